package eap

import (
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"time"
)

// engine runs one TLS server over an in-memory conn. crypto/tls blocks,
// so the handshake and the tunnel's reads run on a goroutine of their own;
// step hands it one reassembled TLS message and waits until it needs the
// next one (its flight is complete), then returns what it wrote.
//
// The tls.Conn is never closed (on an in-memory pipe Close blocks writing
// close_notify): close ends the goroutine by closing the memory conn.
type engine struct {
	conn *memConn
	tc   *tls.Conn

	primed   bool          // step side: the goroutine's first request taken
	finished chan struct{} // closed when the goroutine returns
	err      error         // why, set before finished is closed

	// Set by the goroutine before it next asks for input.
	mu   sync.Mutex
	done bool // handshake complete
	cs   tls.ConnectionState
	app  []byte // tunnel plaintext read and not yet taken
}

// stepTimeout bounds one step: a TLS handshake step is CPU work only.
const stepTimeout = 5 * time.Second

var errAppTooLarge = errors.New("eap: tunnel data larger than 64 KiB")

func newEngine(conf *tls.Config) *engine {
	return startEngine(func(c net.Conn) *tls.Conn { return tls.Server(c, conf) })
}

// startEngine runs the TLS side mk builds (the tests' supplicant uses
// tls.Client) over a fresh memory conn.
func startEngine(mk func(net.Conn) *tls.Conn) *engine {
	c := &memConn{
		in:     make(chan []byte),
		need:   make(chan struct{}),
		closed: make(chan struct{}),
	}
	e := &engine{conn: c, tc: mk(c), finished: make(chan struct{})}
	go e.run()
	return e
}

func (e *engine) run() {
	defer close(e.finished)
	if err := e.tc.Handshake(); err != nil {
		e.err = err
		return
	}
	e.mu.Lock()
	e.done, e.cs = true, e.tc.ConnectionState()
	e.mu.Unlock()
	buf := make([]byte, 16<<10)
	for {
		n, err := e.tc.Read(buf)
		if n > 0 {
			e.mu.Lock()
			if len(e.app)+n > MaxMessage {
				e.mu.Unlock()
				e.err = errAppTooLarge
				return
			}
			e.app = append(e.app, buf[:n]...)
			e.mu.Unlock()
		}
		if err != nil {
			e.err = err
			return
		}
	}
}

// step feeds one TLS message and returns the TLS bytes to send back and
// the tunnel plaintext received so far. An error ends the session.
func (e *engine) step(msg []byte) (out, app []byte, err error) {
	timer := time.NewTimer(stepTimeout)
	defer timer.Stop()
	// The goroutine asks for input, then waits for it; after the first
	// step it is already waiting (step took its request).
	if !e.primed {
		select {
		case <-e.conn.need:
			e.primed = true
		case <-e.finished:
			return e.conn.take(), nil, e.finishedErr()
		case <-timer.C:
			return nil, nil, errors.New("eap: TLS engine stuck")
		}
	}
	select {
	case e.conn.in <- msg:
	case <-e.finished:
		return e.conn.take(), nil, e.finishedErr()
	}
	// Its flight is complete when it asks for input again.
	select {
	case <-e.conn.need:
	case <-e.finished:
		return e.conn.take(), nil, e.finishedErr()
	case <-timer.C:
		return nil, nil, errors.New("eap: TLS step timed out")
	}
	e.mu.Lock()
	app, e.app = e.app, nil
	e.mu.Unlock()
	return e.conn.take(), app, nil
}

func (e *engine) finishedErr() error {
	if e.err == nil {
		return errors.New("eap: TLS ended")
	}
	return e.err
}

// state returns whether the handshake is complete and its state.
func (e *engine) state() (bool, tls.ConnectionState) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.done, e.cs
}

// write sends tunnel plaintext (after the handshake); the records are
// returned by the next take.
func (e *engine) write(b []byte) ([]byte, error) {
	if _, err := e.tc.Write(b); err != nil {
		return nil, err
	}
	return e.conn.take(), nil
}

func (e *engine) close() { e.conn.Close() }

// memConn is the in-memory net.Conn under the tls.Conn. Read asks for
// input on need and blocks until step sends it; Write only buffers.
type memConn struct {
	in      chan []byte
	need    chan struct{}
	closed  chan struct{}
	once    sync.Once
	pending []byte // goroutine side only

	mu  sync.Mutex
	out []byte
}

func (c *memConn) Read(p []byte) (int, error) {
	if len(c.pending) == 0 {
		select {
		case c.need <- struct{}{}:
		case <-c.closed:
			return 0, net.ErrClosed
		}
		select {
		case b := <-c.in:
			c.pending = b
		case <-c.closed:
			return 0, net.ErrClosed
		}
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

func (c *memConn) Write(p []byte) (int, error) {
	select {
	case <-c.closed:
		return 0, net.ErrClosed
	default:
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.out)+len(p) > MaxMessage {
		return 0, errTooLarge
	}
	c.out = append(c.out, p...)
	return len(p), nil
}

func (c *memConn) take() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.out
	c.out = nil
	return b
}

func (c *memConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

func (c *memConn) LocalAddr() net.Addr              { return memAddr{} }
func (c *memConn) RemoteAddr() net.Addr             { return memAddr{} }
func (c *memConn) SetDeadline(time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }

type memAddr struct{}

func (memAddr) Network() string { return "eap" }
func (memAddr) String() string  { return "eap" }
