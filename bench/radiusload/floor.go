package main

import (
	"crypto/hmac"
	"crypto/md5"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"net"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"
)

// serveFloor is the minimal responder: it does only the RADIUS framing
// work a server must do for every Access-Request — check the request's
// Message-Authenticator (RFC 3579 §3.2), and answer Access-Accept with a
// Message-Authenticator first and the Response Authenticator (RFC 2865
// §3) — and no login. It is the floor the real server is compared with,
// driven by the same driver in the same run. One reader per CPU on one
// socket, no allocation per packet. It runs until SIGINT or SIGTERM.
func serveFloor(addr string, secret []byte) error {
	a, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return err
	}
	if !a.IP.IsLoopback() {
		return fmt.Errorf("refusing to serve on non-loopback %s", a.IP)
	}
	c, err := net.ListenUDP("udp", a)
	if err != nil {
		return err
	}
	_ = c.SetReadBuffer(4 << 20)
	fmt.Fprintf(os.Stderr, "radiusload: floor responder on %s\n", c.LocalAddr())
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			buf := make([]byte, 4097)
			out := make([]byte, 20+18)
			mac := hmac.New(md5.New, secret)
			h := md5.New()
			for {
				n, src, err := c.ReadFromUDPAddrPort(buf)
				if err != nil {
					if errors.Is(err, net.ErrClosed) {
						return
					}
					continue
				}
				if resp := floorAnswer(buf[:n], out, secret, mac, h); resp != nil {
					_, _ = c.WriteToUDPAddrPort(resp, src)
				}
			}
		})
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	c.Close()
	wg.Wait()
	return nil
}

var zero16 [16]byte

// floorAnswer checks req's Message-Authenticator and writes a signed
// Access-Accept into out; nil when the request must be dropped.
func floorAnswer(req, out, secret []byte, mac, h hash.Hash) []byte {
	if len(req) < 20 || req[0] != 1 {
		return nil
	}
	n := int(binary.BigEndian.Uint16(req[2:4]))
	if n < 20 || n > len(req) {
		return nil
	}
	req = req[:n]
	ma := 0
	for off := 20; off < n; {
		if n-off < 2 {
			return nil
		}
		l := int(req[off+1])
		if l < 2 || off+l > n {
			return nil
		}
		if req[off] == 80 {
			if l != 18 || ma != 0 {
				return nil
			}
			ma = off + 2
		}
		off += l
	}
	if ma == 0 {
		return nil
	}
	var sum [16]byte
	mac.Reset()
	mac.Write(req[:ma])
	mac.Write(zero16[:])
	mac.Write(req[ma+16:])
	if !hmac.Equal(mac.Sum(sum[:0]), req[ma:ma+16]) {
		return nil
	}
	out = out[:38]
	out[0], out[1] = 2, req[1]
	binary.BigEndian.PutUint16(out[2:4], 38)
	copy(out[4:20], req[4:20]) // the request authenticator, for both sums
	out[20], out[21] = 80, 18
	clear(out[22:38])
	mac.Reset()
	mac.Write(out)
	mac.Sum(out[22:22])
	h.Reset()
	h.Write(out)
	h.Write(secret)
	h.Sum(out[4:4])
	return out
}
