package store

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// appendEventJSON appends the JSON of ev numbered seq to dst, byte for
// byte what json.Marshal writes for it (ev.Seq is ignored). It is the
// event writer's encoder: json.Marshal's reflection and its two
// allocations were ~45 % of the writer's CPU under a login storm
// (issue 14), a third of the daemon's.
//
// Byte-for-byte matters beyond decoding: ListEvents's prefilter looks
// for fields as json.Marshal lays them out and escapes them, and the
// start-up check reads seq and time from the record's head. The property
// test TestAppendEventJSONMatchesMarshal holds the two together.
//
// ok is false for an event json.Marshal refuses (a time that RFC 3339
// cannot write: a year outside 0-9999 or a zone offset of a day or
// more); the caller then uses json.Marshal for its error.
func appendEventJSON(dst []byte, ev *Event, seq uint64) (out []byte, ok bool) {
	if !rfc3339able(ev.Time) {
		return dst, false
	}
	dst = append(dst, `{"seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `,"time":"`...)
	dst = ev.Time.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","type":`...)
	dst = appendJSONString(dst, string(ev.Type))
	for _, f := range [...]struct {
		key string // ,"name": as json.Marshal writes it
		val string
	}{
		{`,"user_id":`, ev.UserID},
		{`,"username":`, ev.Username},
		{`,"group_id":`, ev.GroupID},
		{`,"group":`, ev.Group},
		{`,"outcome":`, ev.Outcome},
		{`,"reason":`, ev.Reason},
		{`,"source":`, ev.Source},
		{`,"directory":`, ev.Directory},
		{`,"detail":`, ev.Detail},
		{`,"method":`, ev.Method},
	} {
		if f.val != "" { // omitempty
			dst = append(dst, f.key...)
			dst = appendJSONString(dst, f.val)
		}
	}
	if ev.Login {
		dst = append(dst, `,"login":true`...)
	}
	return append(dst, '}'), true
}

// rfc3339able reports whether time.Time.MarshalJSON accepts t: it
// refuses a year that is not four digits and a zone offset whose hours
// do not fit 00-23.
func rfc3339able(t time.Time) bool {
	if y := t.Year(); y < 0 || y > 9999 {
		return false
	}
	_, off := t.Zone()
	return off > -24*3600 && off < 24*3600
}

// jsonHex is the digits of a \u00XX escape.
const jsonHex = "0123456789abcdef"

// appendJSONString appends s quoted as json.Marshal quotes a string (HTML
// escaping on): ", \ and the control characters escaped (\b \f \n \r \t
// short, the rest \u00XX), <, > and & as \u003c \u003e \u0026, U+2028 and
// U+2029 as \u2028 and \u2029, and every byte that is not part of valid
// UTF-8 as \ufffd. Everything else is copied.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0 // s[start:i] is still to be copied
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, `\b`...)
			case '\f':
				dst = append(dst, `\f`...)
			case '\n':
				dst = append(dst, `\n`...)
			case '\r':
				dst = append(dst, `\r`...)
			case '\t':
				dst = append(dst, `\t`...)
			default:
				dst = append(dst, '\\', 'u', '0', '0', jsonHex[c>>4], jsonHex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', jsonHex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
