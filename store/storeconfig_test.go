package store

import (
	"context"
	"errors"
	"strings"
	"testing"

	gatewayd "github.com/gatewayd/gatewayd"
	"github.com/gatewayd/gatewayd/internal/testutil"
)

func parseStore(t *testing.T, text string) (Config, error) {
	t.Helper()
	var c Config
	err := testutil.ParseBlock(t, "store", &c, text)
	return c, err
}

// TestStoreConfig: the [store] block's default is the documented one,
// sizes parse with binary units, and what is not a size is refused at
// its key.
func TestStoreConfig(t *testing.T) {
	for name, text := range map[string]string{
		"no block":              "",
		"empty block":           "[store]\n",
		"gatewayd.toml.example": testutil.ConfigSection(t, gatewayd.ExampleConfig, "store"),
	} {
		t.Run(name, func(t *testing.T) {
			c, err := parseStore(t, text)
			if err != nil || c.MinFreeSpace != 256<<20 || c.MinFreeSpace.String() != "256MiB" {
				t.Fatalf("min_free_space = %v (%d), %v; want the documented 256MiB", c.MinFreeSpace, uint64(c.MinFreeSpace), err)
			}
		})
	}
	for _, tc := range []struct {
		in      string
		want    uint64
		wantErr string
	}{
		{`"0"`, 0, ""},
		{`"4096"`, 4096, ""},
		{`"512B"`, 512, ""},
		{`"64KiB"`, 64 << 10, ""},
		{`"512MiB"`, 512 << 20, ""},
		{`"1 GiB"`, 1 << 30, ""},
		{`"2TiB"`, 2 << 40, ""},
		{`"1PiB"`, 1 << 50, ""},
		{`"2PiB"`, 0, "more than any disk"},
		{`"20000000PiB"`, 0, "too large"},
		{`"512MB"`, 0, "is not a size"},
		{`"1.5GiB"`, 0, "is not a size"},
		{`"-1MiB"`, 0, "is not a size"},
		{`"MiB"`, 0, "is not a size"},
		{`""`, 0, "is not a size"},
		{`536870912`, 512 << 20, ""}, // a bare TOML integer: bytes
	} {
		t.Run(tc.in, func(t *testing.T) {
			c, err := parseStore(t, "[store]\nmin_free_space = "+tc.in+"\n")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "min_free_space") {
					t.Fatalf("got %v, %v; want an error at min_free_space with %q", c.MinFreeSpace, err, tc.wantErr)
				}
				return
			}
			if err != nil || uint64(c.MinFreeSpace) != tc.want {
				t.Fatalf("got %d, %v; want %d", uint64(c.MinFreeSpace), err, tc.want)
			}
		})
	}
}

// TestHealthFreeSpaceFloor (issue 14, C8) with an injected statfs: below
// the floor Health fails saying how much is free and what the floor is;
// above it Health is fine; statfs runs at most once a second; a failing
// statfs is a failure too; a zero floor never asks.
func TestHealthFreeSpaceFloor(t *testing.T) {
	s := newStore(t, Options{MinFreeSpace: 256 << 20})
	var free uint64 = 100 << 20
	var statErr error
	calls := 0
	s.health.statfs = func(dir string) (uint64, error) {
		if dir != s.dir {
			t.Errorf("statfs of %s, want the data dir %s", dir, s.dir)
		}
		calls++
		return free, statErr
	}
	ctx := context.Background()
	err := s.Health(ctx)
	if err == nil {
		t.Fatal("Health is fine with 100 MiB free under a 256 MiB floor")
	}
	for _, want := range []string{s.dir, "100.0 MiB free", "floor of 256.0 MiB", "[store] min_free_space", "no space left on device"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not mention %q", err, want)
		}
	}
	free = 10 << 30
	// Renew the sample's time so "within a second" holds however slowly
	// this test runs: the reuse is what is checked, not the clock.
	prev := s.health.free.Load()
	s.health.free.Store(&freeSpaceSample{at: monoNow(), err: prev.err})
	if err := s.Health(ctx); err == nil || calls != 1 {
		t.Fatalf("within a second the answer is reused: %v, %d statfs calls", err, calls)
	}
	s.health.free.Store(&freeSpaceSample{at: monoNow() - int64(freeSpaceTTL), err: errors.New("stale")})
	if err := s.Health(ctx); err != nil || calls != 2 {
		t.Fatalf("with 10 GiB free: %v, %d statfs calls", err, calls)
	}
	statErr = errors.New("input/output error")
	s.health.free.Store(nil)
	if err := s.Health(ctx); err == nil || !strings.Contains(err.Error(), "cannot read the free space") {
		t.Fatalf("failing statfs: %v", err)
	}

	off := newStore(t, Options{})
	off.health.statfs = func(string) (uint64, error) { t.Error("statfs called without a floor"); return 0, nil }
	if err := off.Health(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestAvailableBytes: the real statfs of a temp dir answers something
// plausible.
func TestAvailableBytes(t *testing.T) {
	n, err := availableBytes(t.TempDir())
	if err != nil || n == 0 {
		t.Fatalf("availableBytes: %d, %v", n, err)
	}
}
