package ldapserver

import (
	"sync"

	ber "github.com/go-asn1-ber/asn1-ber"
)

// Responses are encoded by appending bytes to one buffer rather than by
// building a go-asn1-ber packet tree: a tree costs several allocations per
// element, and a search answer has a few dozen elements per entry. The
// bytes are the same (definite, minimal lengths; minimal integers); the
// tests check that against go-asn1-ber.

// berWriter appends BER elements to b. Constructed elements are opened
// with begin and closed with end, which fills in the length.
type berWriter struct {
	b    []byte
	open []int // content start of each open constructed element
}

var writerPool = sync.Pool{New: func() any { return &berWriter{b: make([]byte, 0, 512)} }}

func getWriter() *berWriter { return writerPool.Get().(*berWriter) }

func putWriter(w *berWriter) {
	if cap(w.b) > 64<<10 {
		return // one huge entry should not pin its buffer
	}
	w.b, w.open = w.b[:0], w.open[:0]
	writerPool.Put(w)
}

// identifier is the single identifier octet of a tag below 31, which is
// every tag LDAP uses.
func identifier(class ber.Class, typ ber.Type, tag ber.Tag) byte {
	return byte(class) | byte(typ) | byte(tag)
}

func (w *berWriter) begin(class ber.Class, tag ber.Tag) {
	w.b = append(w.b, identifier(class, ber.TypeConstructed, tag), 0)
	w.open = append(w.open, len(w.b))
}

// end closes the innermost open element. Its length was reserved as one
// octet; a longer length form moves the content up.
func (w *berWriter) end() {
	start := w.open[len(w.open)-1]
	w.open = w.open[:len(w.open)-1]
	n := len(w.b) - start
	if n < 0x80 {
		w.b[start-1] = byte(n)
		return
	}
	k := 0
	for v := n; v > 0; v >>= 8 {
		k++
	}
	w.b = append(w.b, make([]byte, k)...)
	copy(w.b[start+k:], w.b[start:start+n])
	w.b[start-1] = 0x80 | byte(k)
	for i := k - 1; i >= 0; i-- {
		w.b[start+i] = byte(n)
		n >>= 8
	}
}

func (w *berWriter) length(n int) {
	if n < 0x80 {
		w.b = append(w.b, byte(n))
		return
	}
	k := 0
	for v := n; v > 0; v >>= 8 {
		k++
	}
	w.b = append(w.b, 0x80|byte(k))
	for i := k - 1; i >= 0; i-- {
		w.b = append(w.b, byte(n>>(8*i)))
	}
}

// str appends a primitive element holding s (OCTET STRING and the like).
func (w *berWriter) str(class ber.Class, tag ber.Tag, s string) {
	w.b = append(w.b, identifier(class, ber.TypePrimitive, tag))
	w.length(len(s))
	w.b = append(w.b, s...)
}

func (w *berWriter) octets(s string) { w.str(ber.ClassUniversal, ber.TagOctetString, s) }

// integer appends v in minimal two's complement (INTEGER, ENUMERATED).
func (w *berWriter) integer(tag ber.Tag, v int64) {
	n := 1
	for x := v; x > 127 || x < -128; x >>= 8 {
		n++
	}
	w.b = append(w.b, identifier(ber.ClassUniversal, ber.TypePrimitive, tag), byte(n))
	for i := n - 1; i >= 0; i-- {
		w.b = append(w.b, byte(v>>(8*i)))
	}
}

// --- LDAP messages (RFC 4511 4.1.1) ---

// beginMessage opens an LDAPMessage with its messageID; endMessage closes
// it after the protocolOp, adding controls (each one encoded Control).
func (w *berWriter) beginMessage(id int64) {
	w.begin(ber.ClassUniversal, ber.TagSequence)
	w.integer(ber.TagInteger, id)
}

func (w *berWriter) endMessage(controls ...[]byte) {
	if len(controls) > 0 {
		w.begin(ber.ClassContext, 0)
		for _, c := range controls {
			w.b = append(w.b, c...)
		}
		w.end()
	}
	w.end()
}

// result appends an LDAPResult-shaped protocolOp and leaves it open for
// extra fields (ExtendedResponse's name and value).
func (w *berWriter) beginResult(tag ber.Tag, code int, matched, diag string) {
	w.begin(ber.ClassApplication, tag)
	w.integer(ber.TagEnumerated, int64(code))
	w.octets(matched)
	w.octets(diag)
}

func (w *berWriter) appendResult(id int64, tag ber.Tag, code int, matched, diag string, controls ...[]byte) {
	w.beginMessage(id)
	w.beginResult(tag, code, matched, diag)
	w.end()
	w.endMessage(controls...)
}

// appendExtended appends an ExtendedResponse with optional name and value.
func (w *berWriter) appendExtended(id int64, code int, diag, name string, value []byte) {
	w.beginMessage(id)
	w.beginResult(appExtendedResponse, code, "", diag)
	if name != "" {
		w.str(ber.ClassContext, 10, name)
	}
	if value != nil {
		w.str(ber.ClassContext, 11, string(value))
	}
	w.end()
	w.endMessage()
}

// appendEntry appends a SearchResultEntry message.
func (w *berWriter) appendEntry(id int64, dn string, attrs []outAttr, typesOnly bool) {
	w.beginMessage(id)
	w.begin(ber.ClassApplication, appSearchEntry)
	w.octets(dn)
	w.begin(ber.ClassUniversal, ber.TagSequence)
	for _, a := range attrs {
		w.begin(ber.ClassUniversal, ber.TagSequence)
		w.octets(a.name)
		w.begin(ber.ClassUniversal, ber.TagSet)
		if !typesOnly {
			for _, v := range a.vals {
				w.octets(v)
			}
		}
		w.end()
		w.end()
	}
	w.end()
	w.end()
	w.endMessage()
}

// noticeOfDisconnection is the unsolicited notification of RFC 4511 4.4.1.
func noticeOfDisconnection(code int, diag string) []byte {
	var w berWriter
	w.appendExtended(0, code, diag, oidNoticeDisconnect, nil)
	return w.b
}

// pagedControl encodes the Simple Paged Results response control
// (RFC 2696): size 0 (unknown) and the cookie.
func pagedControl(cookie []byte) []byte {
	var v berWriter
	v.begin(ber.ClassUniversal, ber.TagSequence)
	v.integer(ber.TagInteger, 0)
	v.octets(string(cookie))
	v.end()
	var w berWriter
	w.begin(ber.ClassUniversal, ber.TagSequence)
	w.octets(oidPagedResults)
	w.octets(string(v.b))
	w.end()
	return w.b
}
