package radiusserver

import (
	"errors"
	"net"
	"net/netip"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// readBatch is how many datagrams one read may return. A NAS with many
// logins in flight queues several; one recvmmsg and one sendmmsg then
// carry them all instead of a system call per packet each way.
const readBatch = 32

// batchMessage is x/net's message type (the same for IPv4 and IPv6).
type batchMessage = ipv4.Message

// batchIO is what ipv4.PacketConn and ipv6.PacketConn have in common.
// Where the platform has no recvmmsg/sendmmsg they move one message per
// call, which is still correct.
type batchIO interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// batchConn reads and answers datagrams on one socket in batches. It is
// used by one goroutine.
type batchConn struct {
	io  batchIO
	in  []batchMessage // Buffers[0] of each is owned by the caller
	out []batchMessage // answers queued since the last flush
	// outBufs backs out's one-element Buffers, so queueing an answer
	// allocates nothing.
	outBufs [][]byte
}

func newBatchConn(c *net.UDPConn, n int) *batchConn {
	var io batchIO = ipv4.NewPacketConn(c)
	if a, ok := c.LocalAddr().(*net.UDPAddr); ok && a.IP.To4() == nil {
		// Also a dual-stack wildcard socket: recvmmsg does not care,
		// but this keeps the address family explicit.
		io = ipv6.NewPacketConn(c)
	}
	b := &batchConn{io: io, in: make([]batchMessage, n), out: make([]batchMessage, 0, n), outBufs: make([][]byte, n)}
	for i := range b.in {
		b.in[i].Buffers = make([][]byte, 1)
	}
	return b
}

// read fills the first n messages of in.
func (b *batchConn) read() (int, error) {
	return b.io.ReadBatch(b.in, 0)
}

// source is message i's sender; ok false for an address that is not UDP
// (which a UDP socket does not produce).
func (b *batchConn) source(i int) (netip.AddrPort, bool) {
	a, ok := b.in[i].Addr.(*net.UDPAddr)
	if !ok {
		return netip.AddrPort{}, false
	}
	return a.AddrPort(), true
}

// queueReply sends resp to addr at the next flush. resp must not be
// reused before then.
func (b *batchConn) queueReply(resp []byte, addr net.Addr) {
	i := len(b.out)
	if i == len(b.outBufs) {
		b.outBufs = append(b.outBufs, nil)
	}
	b.outBufs[i] = resp
	b.out = append(b.out, batchMessage{Buffers: b.outBufs[i : i+1 : i+1], Addr: addr})
}

// flush sends the queued answers. An error drops the rest of the batch:
// a NAS retransmits and finds the answer in the duplicate cache.
func (b *batchConn) flush() error {
	defer func() {
		clear(b.out)
		clear(b.outBufs)
		b.out = b.out[:0]
	}()
	for sent := 0; sent < len(b.out); {
		n, err := b.io.WriteBatch(b.out[sent:], 0)
		if err != nil {
			return err
		}
		if n == 0 {
			return errors.New("sendmmsg sent nothing")
		}
		sent += n
	}
	return nil
}
