// Package fakehttp is the machinery the in-process fakes of cloud
// services (internal/fakegraph, internal/fakegoogle) share: a clock a
// test may replace, the faults, throttling, outages and latency a test
// injects, the bearer tokens a fake issued, its request log, and the
// reading and answering of one request. What goes on the wire, error
// bodies included, stays each fake's own, so that each speaks its
// service's dialect.
package fakehttp

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Clock is a time.Now that a test may replace, safe for concurrent use.
// The zero Clock is time.Now.
type Clock struct {
	mu  sync.Mutex
	now func() time.Time
}

// Set replaces time.Now with now; nil restores time.Now.
func (c *Clock) Set(now func() time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = now
}

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	now := c.now
	c.mu.Unlock()
	// Called unlocked: a test's clock may be slow or take locks of its own.
	if now == nil {
		return time.Now()
	}
	return now()
}

// ErrTooLarge is the body-read error of Serve for a body over the limit.
var ErrTooLarge = errors.New("fakehttp: request body too large")

// Serve calls handle with r's body, read in full up to maxBody bytes (a
// read error, ErrTooLarge included, is handle's to answer in its
// service's words), and returns the status handle answered with: 0 if it
// wrote nothing, as when the client gave up during added latency. The
// body is wiped when handle returns, since it may hold a password.
func Serve(w http.ResponseWriter, r *http.Request, maxBody int64, handle func(w http.ResponseWriter, body []byte, err error)) int {
	rec := &recorder{ResponseWriter: w}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err == nil && int64(len(body)) > maxBody {
		err = ErrTooLarge
	}
	handle(rec, body, err)
	clear(body)
	return rec.status
}

// recorder remembers the status a handler answered with, for the log.
type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Response is an answer a fake decides while it holds its lock and
// writes after releasing it, so that a slow client never stalls the
// fake.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON is a response of v as JSON, labelled contentType (each service
// words its media type its own way).
func JSON(status int, contentType string, v any) *Response {
	// The fakes encode maps and slices of JSON values, which cannot fail.
	b, _ := json.Marshal(v)
	return &Response{Status: status, Header: http.Header{"Content-Type": {contentType}}, Body: b}
}

// Write sends the response.
func (rs *Response) Write(w http.ResponseWriter) {
	for k, v := range rs.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(rs.Status)
	if len(rs.Body) > 0 {
		_, _ = w.Write(rs.Body)
	}
}

// RetryAfter is d as a Retry-After value: whole seconds, rounded up,
// at least one, since a client reads 0 as "retry at once".
func RetryAfter(d time.Duration) string {
	n := int64((d + time.Second - 1) / time.Second)
	return strconv.FormatInt(max(n, 1), 10)
}
