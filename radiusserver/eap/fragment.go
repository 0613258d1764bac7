package eap

import (
	"encoding/binary"
	"errors"
)

// TLS-based method flags (RFC 5216 §3.1, RFC 5281 §9.1).
const (
	flagLength  = 0x80 // L: a 4-octet TLS Message Length follows
	flagMore    = 0x40 // M: more fragments follow
	flagStart   = 0x20 // S: start
	versionBits = 0x07
)

const (
	// MaxMessage bounds one reassembled TLS message (64 KiB).
	MaxMessage = 64 << 10
	// tlsHeader: EAP header (4), Type (1), Flags (1), TLS Message Length (4).
	tlsHeader = 10
	// minFragment is the smallest EAP packet size we fragment to (the
	// smallest Framed-MTU RFC 2865 allows is 64).
	minFragment = 64
)

var (
	errNoFlags    = errors.New("eap: TLS method data without a Flags octet")
	errTLSLength  = errors.New("eap: TLS Message Length is missing or wrong")
	errTooLarge   = errors.New("eap: TLS message larger than 64 KiB")
	errOverrun    = errors.New("eap: fragments exceed the announced TLS Message Length")
	errShortTotal = errors.New("eap: fragments end short of the announced TLS Message Length")
)

// tlsData is the Data of a TLS-based method packet.
type tlsData struct {
	flags uint8
	total int // announced TLS Message Length; -1 when no L flag
	data  []byte
}

func (t tlsData) more() bool { return t.flags&flagMore != 0 }

// parseTLSData reads flags, the optional length and the fragment.
func parseTLSData(d []byte) (tlsData, error) {
	if len(d) < 1 {
		return tlsData{}, errNoFlags
	}
	t := tlsData{flags: d[0], total: -1, data: d[1:]}
	if t.flags&flagLength != 0 {
		if len(t.data) < 4 {
			return tlsData{}, errTLSLength
		}
		total := binary.BigEndian.Uint32(t.data[:4])
		t.data = t.data[4:]
		if total > MaxMessage {
			return tlsData{}, errTooLarge
		}
		if int(total) < len(t.data) {
			return tlsData{}, errTLSLength
		}
		t.total = int(total)
	}
	return t, nil
}

// reassembler joins the fragments of one TLS message, at most MaxMessage
// bytes.
type reassembler struct {
	buf    []byte
	total  int // -1: not announced
	active bool
}

// add takes one fragment; done reports a complete message in r.buf.
func (r *reassembler) add(t tlsData) (done bool, err error) {
	if !r.active {
		r.buf, r.total = r.buf[:0], t.total
	} else if t.total >= 0 && r.total >= 0 && t.total != r.total {
		// Some peers repeat L on every fragment; it must not change.
		return false, errTLSLength
	}
	if len(r.buf)+len(t.data) > MaxMessage {
		return false, errTooLarge
	}
	if r.total >= 0 && len(r.buf)+len(t.data) > r.total {
		return false, errOverrun
	}
	r.buf = append(r.buf, t.data...)
	if t.more() {
		r.active = true
		return false, nil
	}
	r.active = false
	if r.total >= 0 && len(r.buf) != r.total {
		return false, errShortTotal
	}
	return true, nil
}

func (r *reassembler) reset() { r.buf, r.total, r.active = r.buf[:0], -1, false }

// fragmenter sends one TLS message in fragments.
type fragmenter struct {
	msg   []byte
	off   int
	total int
}

func (f *fragmenter) pending() bool { return f.off < len(f.msg) }

func (f *fragmenter) load(msg []byte) { f.msg, f.off, f.total = msg, 0, len(msg) }

// next returns the Data of the next request: flags (with version), the
// length on the first fragment of a fragmented message, and at most
// size-tlsHeader octets of the message. size is the largest EAP packet.
func (f *fragmenter) next(version uint8, size int) []byte {
	room := max(size, minFragment) - tlsHeader
	rest := f.msg[f.off:]
	first := f.off == 0
	n := min(len(rest), room)
	flags := version & versionBits
	var out []byte
	if first && n < len(rest) {
		flags |= flagLength | flagMore
		out = make([]byte, 0, 5+n)
		out = append(out, flags)
		out = binary.BigEndian.AppendUint32(out, uint32(f.total))
	} else {
		if n < len(rest) {
			flags |= flagMore
		}
		out = make([]byte, 0, 1+n)
		out = append(out, flags)
	}
	out = append(out, rest[:n]...)
	f.off += n
	if !f.pending() {
		f.msg, f.off = nil, 0
	}
	return out
}
