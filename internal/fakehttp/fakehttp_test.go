package fakehttp

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// testClock is a Clock set to a time the test moves by hand.
func testClock(t *testing.T) (*Clock, *time.Time) {
	t.Helper()
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	c := &Clock{}
	c.Set(func() time.Time { return now })
	return c, &now
}

func TestClock(t *testing.T) {
	var c Clock
	if d := time.Since(c.Now()); d < 0 || d > time.Minute {
		t.Fatalf("zero Clock is %v off time.Now", d)
	}
	fixed := time.Unix(42, 0)
	c.Set(func() time.Time { return fixed })
	if !c.Now().Equal(fixed) {
		t.Fatal("Set ignored")
	}
	c.Set(nil)
	if c.Now().Equal(fixed) {
		t.Fatal("Set(nil) kept the replaced clock")
	}
}

func TestRetryAfter(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second:            "1",
		0:                       "1",
		time.Millisecond:        "1",
		time.Second:             "1",
		1500 * time.Millisecond: "2",
		2 * time.Minute:         "120",
	} {
		if got := RetryAfter(d); got != want {
			t.Errorf("RetryAfter(%v) = %s, want %s", d, got, want)
		}
	}
}

func TestServe(t *testing.T) {
	cases := []struct {
		name       string
		body       string
		handle     func(w http.ResponseWriter)
		wantErr    error
		wantStatus int
	}{
		{"status from WriteHeader", "abc", func(w http.ResponseWriter) { w.WriteHeader(http.StatusCreated) }, nil, http.StatusCreated},
		{"Write alone is 200", "abc", func(w http.ResponseWriter) { _, _ = w.Write([]byte("x")) }, nil, http.StatusOK},
		{"first status counts", "", func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusNoContent)
			w.WriteHeader(http.StatusTeapot)
		}, nil, http.StatusNoContent},
		{"nothing written", "", func(http.ResponseWriter) {}, nil, 0},
		{"at the limit", strings.Repeat("x", 8), func(w http.ResponseWriter) { w.WriteHeader(http.StatusOK) }, nil, http.StatusOK},
		{"over the limit", strings.Repeat("x", 9), func(w http.ResponseWriter) { w.WriteHeader(http.StatusRequestEntityTooLarge) },
			ErrTooLarge, http.StatusRequestEntityTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/x", strings.NewReader(tc.body))
			var kept []byte
			status := Serve(httptest.NewRecorder(), r, 8, func(w http.ResponseWriter, body []byte, err error) {
				if !errors.Is(err, tc.wantErr) {
					t.Errorf("err %v, want %v", err, tc.wantErr)
				}
				if err == nil && string(body) != tc.body {
					t.Errorf("body %q, want %q", body, tc.body)
				}
				kept = body
				tc.handle(w)
			})
			if status != tc.wantStatus {
				t.Errorf("status %d, want %d", status, tc.wantStatus)
			}
			if strings.Trim(string(kept), "\x00") != "" {
				t.Errorf("body %q not wiped after the handler", kept)
			}
		})
	}
}

func TestResponse(t *testing.T) {
	rs := JSON(http.StatusCreated, "application/json; charset=UTF-8", map[string]any{"id": "1"})
	rs.Header.Set("Location", "/x/1")
	w := httptest.NewRecorder()
	rs.Write(w)
	if w.Code != http.StatusCreated || w.Body.String() != `{"id":"1"}` ||
		w.Header().Get("Content-Type") != "application/json; charset=UTF-8" || w.Header().Get("Location") != "/x/1" {
		t.Fatalf("%d %v %s", w.Code, w.Header(), w.Body)
	}
	w = httptest.NewRecorder()
	(&Response{Status: http.StatusNoContent}).Write(w)
	if w.Code != http.StatusNoContent || w.Body.Len() != 0 {
		t.Fatalf("no content: %d %q", w.Code, w.Body)
	}
}

func TestFaults(t *testing.T) {
	h := NewHooks(&Clock{}, "token")
	h.Fail(Fault{Method: http.MethodPatch, Status: 412, Code: "patch"})
	h.Fail(Fault{Kind: "user", Times: 2, Status: 500, Code: "user"})
	h.Fail(Fault{Kind: "token", Status: 503, Code: "token"})
	h.Fail(Fault{Status: 502, Code: "any"})
	steps := []struct {
		method, kind string
		want         string // the fault's Code, "" for none
	}{
		{http.MethodPost, "token", "token"}, // only a fault naming the token kind reaches it
		{http.MethodPost, "token", ""},
		{http.MethodGet, "user", "user"},
		{http.MethodPatch, "user", "patch"}, // first in the queue wins
		{http.MethodGet, "group", "any"},
		{http.MethodGet, "user", "user"},
		{http.MethodGet, "user", ""},
		{http.MethodPatch, "user", ""},
	}
	for i, st := range steps {
		f, ok := h.TakeFault(st.method, st.kind)
		if ok != (st.want != "") || f.Code != st.want {
			t.Fatalf("step %d (%s %s): got %q %v, want %q", i, st.method, st.kind, f.Code, ok, st.want)
		}
	}
}

func TestThrottle(t *testing.T) {
	h := NewHooks(&Clock{}, "token")
	if _, ok := h.TakeThrottle(); ok {
		t.Fatal("throttled before Throttle")
	}
	h.Throttle(2, 3*time.Second)
	for i := range 2 {
		if d, ok := h.TakeThrottle(); !ok || d != 3*time.Second {
			t.Fatalf("call %d: %v %v", i, d, ok)
		}
	}
	if _, ok := h.TakeThrottle(); ok {
		t.Fatal("throttled a third call")
	}
}

func TestDown(t *testing.T) {
	c, now := testClock(t)
	h := NewHooks(c, "token")
	check := func(step string, wantLeft time.Duration, wantDown bool) {
		t.Helper()
		if left, down := h.Down(); left != wantLeft || down != wantDown {
			t.Fatalf("%s: Down() = %v, %v; want %v, %v", step, left, down, wantLeft, wantDown)
		}
	}
	check("initially", 0, false)
	h.Outage(time.Minute)
	*now = now.Add(20 * time.Second)
	check("during an outage", 40*time.Second, true)
	*now = now.Add(40 * time.Second)
	check("after it", 0, false)
	h.SetDown(true)
	check("SetDown(true)", 0, true)
	h.Outage(time.Hour)
	check("SetDown wins over an outage", 0, true)
	h.SetDown(false)
	check("SetDown(false) ends both", 0, false)
}

func TestDelay(t *testing.T) {
	h := NewHooks(&Clock{}, "token")
	if err := h.Delay(context.Background()); err != nil {
		t.Fatalf("no latency: %v", err)
	}
	h.SetLatency(time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h.Delay(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("client gone: %v", err)
	}
	h.SetLatency(time.Millisecond)
	if err := h.Delay(context.Background()); err != nil {
		t.Fatalf("short latency: %v", err)
	}
}

func TestTokens(t *testing.T) {
	c, now := testClock(t)
	tk := NewTokens[string](c, "fake.", time.Minute)
	tok, life := tk.Issue("alice")
	if !strings.HasPrefix(tok, "fake.") || life != time.Minute || tk.Issued() != 1 {
		t.Fatalf("Issue: %q %v, %d issued", tok, life, tk.Issued())
	}
	check := func(step, authorization, wantGrant string, wantErr error) {
		t.Helper()
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		if authorization != "" {
			r.Header.Set("Authorization", authorization)
		}
		g, err := tk.Check(r)
		if g != wantGrant || !errors.Is(err, wantErr) {
			t.Fatalf("%s: Check = %q, %v; want %q, %v", step, g, err, wantGrant, wantErr)
		}
	}
	check("no header", "", "", ErrNoToken)
	check("not bearer", "Basic "+tok, "", ErrNoToken)
	check("empty bearer", "Bearer ", "", ErrNoToken)
	check("forged", "Bearer fake.forged", "", ErrUnknownToken)
	check("valid", "Bearer "+tok, "alice", nil)
	*now = now.Add(time.Minute - time.Nanosecond)
	check("just before expiry", "Bearer "+tok, "alice", nil)
	*now = now.Add(time.Nanosecond)
	check("at expiry", "Bearer "+tok, "", ErrTokenExpired)

	tk.SetLifetime(time.Millisecond)
	tok2, life := tk.Issue("bob")
	if life != time.Second || tok2 == tok {
		t.Fatalf("lifetime %v (want at least a second), token repeated: %v", life, tok2 == tok)
	}
	check("new token", "Bearer "+tok2, "bob", nil)
	tk.ExpireAll()
	check("after ExpireAll", "Bearer "+tok2, "", ErrTokenExpired)
	if tk.Issued() != 2 {
		t.Fatalf("%d issued", tk.Issued())
	}
}

func TestLog(t *testing.T) {
	var l Log[string]
	if len(l.Entries()) != 0 || l.Count("GET", "user") != 0 || len(l.Counts()) != 0 {
		t.Fatal("zero Log not empty")
	}
	l.Add("GET", "user", "a")
	l.Add("GET", "user", "b")
	l.Add("POST", "token", "c")
	if got := strings.Join(l.Entries(), ","); got != "a,b,c" {
		t.Fatalf("entries %s", got)
	}
	if l.Count("GET", "user") != 2 || l.Count("POST", "token") != 1 || l.Count("POST", "user") != 0 {
		t.Fatalf("counts %v", l.Counts())
	}
	m := l.Counts()
	m["GET user"] = 99
	l.Entries()[0] = "changed"
	if l.Count("GET", "user") != 2 || l.Entries()[0] != "a" {
		t.Fatal("a copy aliases the log")
	}
	l.Reset()
	if len(l.Entries()) != 0 || l.Count("GET", "user") != 0 {
		t.Fatal("Reset kept entries")
	}
	l.Add("GET", "user", "d")
	if l.Count("GET", "user") != 1 {
		t.Fatal("Add after Reset")
	}
}
