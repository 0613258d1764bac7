package google

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"time"

	"golang.org/x/oauth2"
)

// tokenCache holds the access token shared by every call. lock is a
// one-slot semaphore (so waiters honour their context) guarding tok and
// issued.
type tokenCache struct {
	lock   chan struct{}
	tok    *oauth2.Token
	issued time.Time
}

func newTokenCache() *tokenCache { return &tokenCache{lock: make(chan struct{}, 1)} }

// token returns a bearer token and whether it was fetched by this call.
// It fetches one when there is none, it is about to expire, or it equals
// stale (the API just refused it). The fetch runs under ctx (the call's
// deadline), through the connector's base transport.
func (c *Connector) token(ctx context.Context, stale string) (string, bool, error) {
	tc := c.tokens
	select {
	case tc.lock <- struct{}{}:
	case <-ctx.Done():
		return "", false, ctx.Err()
	}
	defer func() { <-tc.lock }()

	now := time.Now()
	if t := tc.tok; t != nil && t.AccessToken != stale && now.Before(t.Expiry.Add(-refreshMargin(t.Expiry.Sub(tc.issued)))) {
		return t.AccessToken, false, nil
	}
	hc := &http.Client{Transport: ctxTransport{base: c.base, ctx: ctx}, CheckRedirect: noRedirect}
	t, err := c.jwt.TokenSource(context.WithValue(ctx, oauth2.HTTPClient, hc)).Token()
	if err != nil {
		return "", false, c.tokenError(ctx, err)
	}
	if t.AccessToken == "" {
		return "", false, c.tokenError(ctx, errors.New("the token endpoint answered without an access token"))
	}
	if t.Expiry.IsZero() {
		// No expires_in: do not trust it for long.
		t.Expiry = now.Add(5 * time.Minute)
	}
	tc.tok, tc.issued = t, now
	c.log.Debug("fetched a Google access token", "expires_in", time.Until(t.Expiry).Round(time.Second))
	return t.AccessToken, true, nil
}

// refreshMargin: renew a token a little before it expires, a tenth of its
// lifetime, at most a minute (Google tokens live an hour).
func refreshMargin(lifetime time.Duration) time.Duration {
	return min(lifetime/10, time.Minute)
}

// ctxTransport gives x/oauth2's token request (built without a context)
// the calling method's context, so a token fetch honours its deadline
// and cancellation.
type ctxTransport struct {
	base http.RoundTripper
	ctx  context.Context
}

func (t ctxTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return t.base.RoundTrip(req.WithContext(t.ctx))
}

// authTransport adds the bearer token to each Directory API request, logs
// it, caps the answer's size, and on a 401 with a cached token fetches a
// new one and repeats the request once. It never retries anything else.
type authTransport struct{ c *Connector }

func (t *authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c := t.c
	ctx := req.Context()
	stale := ""
	for attempt := 0; ; attempt++ {
		tok, fresh, err := c.token(ctx, stale)
		if err != nil {
			if req.Body != nil {
				req.Body.Close()
			}
			return nil, err
		}
		r := req.Clone(ctx)
		if attempt > 0 && req.GetBody != nil {
			if r.Body, err = req.GetBody(); err != nil {
				return nil, err
			}
		}
		r.Header.Set("Authorization", "Bearer "+tok)
		start := time.Now()
		resp, err := c.base.RoundTrip(r)
		if err != nil {
			return nil, err
		}
		c.log.Debug("directory call", "method", r.Method, "path", r.URL.EscapedPath(), "status", resp.StatusCode,
			"duration", time.Since(start))
		if resp.StatusCode == http.StatusUnauthorized && attempt == 0 && !fresh && replayable(req) {
			// The token was revoked or expired early: fetch a new one,
			// once, and repeat the call.
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			stale = tok
			c.log.Debug("Google refused the token; fetching a new one", "path", r.URL.EscapedPath())
			continue
		}
		resp.Body = &limitedBody{rc: resp.Body, n: MaxResponseBytes}
		return resp, nil
	}
}

func replayable(req *http.Request) bool {
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

// errTooLarge: the response exceeded MaxResponseBytes.
var errTooLarge = errors.New("response larger than 4 MiB")

type limitedBody struct {
	rc io.ReadCloser
	n  int64
}

func (l *limitedBody) Read(p []byte) (int, error) {
	if l.n <= 0 {
		var one [1]byte
		k, err := l.rc.Read(one[:])
		if k > 0 {
			return 0, errTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	k, err := l.rc.Read(p)
	l.n -= int64(k)
	return k, err
}

func (l *limitedBody) Close() error { return l.rc.Close() }

func newTLSConfig() *tls.Config { return &tls.Config{MinVersion: tls.VersionTLS12} }
