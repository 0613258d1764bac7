package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Every value in every journal bucket (schema version 4 on) is framed:
//
//	byte 0     recordTag, the frame format
//	bytes 1-4  CRC-32C, big-endian, over uvarint(len(key)) | key | payload
//	bytes 5-   payload (an object's JSON, or a meta value's decimal)
//
// bbolt checksums only its two meta pages, not the pages holding data,
// so without this a flipped bit inside a record loads silently (an email
// altered on disk was served over LDAP). CRC-32C because it is what the
// job needs and no more: it is computed in hardware (SSE4.2, ARMv8) by
// hash/crc32, costs 4 bytes a record, and catches every burst of up to
// 32 flipped bits and any 1-3 bit error at these lengths. It is a check
// against media, firmware and stray-write damage, not against someone who
// can write the file (they could recompute it, or simply replace a
// password hash); file permissions guard that. The key is covered too
// (length-prefixed, so key and payload cannot trade bytes), so a record
// that ends up under another key is caught as well.
//
// The tag byte cannot begin an unframed record of schema version 3 or
// older (JSON starts with '{', meta values with a digit), so the v3->v4
// migration can tell framed values from legacy ones without guessing.

const (
	recordTag    = 0xC4
	recordHeader = 5
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errUnframed is returned by unframeRecord for a value that carries no
// frame at all.
var errUnframed = errors.New("it has no checksum frame (written before schema version 4, or its first byte was altered)")

// shortKeyLen[i] is i: the one-byte uvarint of a key length below 128.
var shortKeyLen = func() (b [128]byte) {
	for i := range b {
		b[i] = byte(i)
	}
	return b
}()

// recordSum is the checksum stored in a frame.
func recordSum(key, payload []byte) uint32 {
	var h uint32
	if len(key) < len(shortKeyLen) {
		// The uvarint of a length below 128 is that one byte. Taken from
		// a table, not a local array: a local one escapes into crc32 and
		// costs an allocation per record (one per login event).
		h = crc32.Update(0, castagnoli, shortKeyLen[len(key):len(key)+1])
	} else {
		var n [binary.MaxVarintLen64]byte
		h = crc32.Update(0, castagnoli, n[:binary.PutUvarint(n[:], uint64(len(key)))])
	}
	h = crc32.Update(h, castagnoli, key)
	return crc32.Update(h, castagnoli, payload)
}

// frameRecord returns the journal value holding payload under key.
func frameRecord(key, payload []byte) []byte {
	v := append(appendFrameHeader(make([]byte, 0, recordHeader+len(payload))), payload...)
	sealFrame(key, v)
	return v
}

// appendFrameHeader appends a frame's header to dst; the payload is
// appended after it, then sealFrame fills in the checksum. This lets a
// writer build the record in its own buffer (the event writer's arena).
func appendFrameHeader(dst []byte) []byte { return append(dst, recordTag, 0, 0, 0, 0) }

// sealFrame fills in the checksum of v, a header from appendFrameHeader
// followed by its payload, to be stored under key.
func sealFrame(key, v []byte) { binary.BigEndian.PutUint32(v[1:], recordSum(key, v[recordHeader:])) }

// unframeRecord checks the frame of value v stored under key and returns
// its payload (a sub-slice of v: copy it if it must outlive the bbolt
// transaction).
func unframeRecord(key, v []byte) ([]byte, error) {
	if len(v) == 0 || v[0] != recordTag {
		return nil, errUnframed
	}
	if len(v) < recordHeader {
		return nil, fmt.Errorf("its checksum frame is cut short (%d bytes)", len(v))
	}
	payload := v[recordHeader:]
	stored, got := binary.BigEndian.Uint32(v[1:]), recordSum(key, payload)
	if stored != got {
		return nil, fmt.Errorf("checksum mismatch (stored crc32c %08x, computed %08x): the record was altered on disk", stored, got)
	}
	return payload, nil
}

// verifyHint ends the message about a damaged record.
const verifyHint = "`gatewayd store verify` lists every damaged record"
