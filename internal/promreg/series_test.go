package promreg

import (
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestSeries: a cached child is the vector's own, made once per label
// set, also when many goroutines ask at once.
func TestSeries(t *testing.T) {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x_total", Help: "x"}, []string{"a", "b"})
	made := 0
	s := NewSeries(func(k [2]string) prometheus.Counter { made++; return vec.WithLabelValues(k[0], k[1]) })
	keys := [][2]string{{"p", "q"}, {"p", "r"}, {"s", "q"}}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				for _, k := range keys {
					s.Get(k).Inc()
				}
			}
		})
	}
	wg.Wait()
	if made != len(keys) {
		t.Errorf("children made %d times, want %d", made, len(keys))
	}
	for _, k := range keys {
		if got := testutil.ToFloat64(vec.WithLabelValues(k[0], k[1])); got != 800 {
			t.Errorf("%v = %v, want 800", k, got)
		}
	}
}
