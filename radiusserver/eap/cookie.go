package eap

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"time"
)

// The start cookie: the State of the Challenge that carries a method's
// Start. Until the peer's first TLS data arrives nothing is stored for it
// (like a TCP SYN cookie), so a flood of EAP-Starts and Identities costs
// no memory and cannot push out anyone's session: the State itself says
// which method was offered, which EAP Identifier the answer must carry,
// when it was issued and the outer identity, under an HMAC keyed by a
// random per-process key.
//
// Layout: 'g' 'c' | method | EAP Identifier | issued (Unix seconds, 4
// octets) | serial (8 octets) | outer length | outer identity |
// HMAC-SHA-256[:16] over the rest. The serial makes every cookie unique
// (the cookie becomes the session's key, and many peers say "anonymous"
// in the same second).
const (
	cookieHeader = 17
	cookieMAC    = 16
	// cookieMaxOuter keeps the State within one 253-octet attribute.
	cookieMaxOuter = 253 - cookieHeader - cookieMAC
)

type startCookie struct {
	method uint8
	id     uint8
	issued time.Time
	outer  string
}

func (s *Server) sealCookie(c startCookie) []byte {
	outer := c.outer
	if len(outer) > cookieMaxOuter {
		outer = outer[:cookieMaxOuter]
	}
	b := make([]byte, 0, cookieHeader+len(outer)+cookieMAC)
	b = append(b, 'g', 'c', c.method, c.id)
	b = binary.BigEndian.AppendUint32(b, uint32(c.issued.Unix()))
	b = binary.BigEndian.AppendUint64(b, s.cookieSerial.Add(1))
	b = append(b, byte(len(outer)))
	b = append(b, outer...)
	m := hmac.New(sha256.New, s.cookieKey[:])
	m.Write(b)
	return m.Sum(b)[:len(b)+cookieMAC]
}

// openCookie returns the cookie in state if it is ours, intact and not
// older than the session timeout.
func (s *Server) openCookie(state []byte, now time.Time) (startCookie, bool) {
	if len(state) < cookieHeader+cookieMAC || state[0] != 'g' || state[1] != 'c' {
		return startCookie{}, false
	}
	n := int(state[cookieHeader-1])
	if len(state) != cookieHeader+n+cookieMAC {
		return startCookie{}, false
	}
	body := state[:cookieHeader+n]
	m := hmac.New(sha256.New, s.cookieKey[:])
	m.Write(body)
	if !hmac.Equal(m.Sum(nil)[:cookieMAC], state[cookieHeader+n:]) {
		return startCookie{}, false
	}
	issued := time.Unix(int64(binary.BigEndian.Uint32(state[4:8])), 0)
	// Whole seconds: allow the second it was issued in.
	if age := now.Sub(issued); age > s.cfg.SessionTimeout+time.Second || age < -time.Second {
		return startCookie{}, false
	}
	return startCookie{method: state[2], id: state[3], issued: issued, outer: string(state[cookieHeader : cookieHeader+n])}, true
}
