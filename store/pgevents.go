package store

import (
	"encoding/binary"
	"fmt"
)

// Events on PostgreSQL are stored a committed batch to a row
// (gw_event_batches, see pgschema): the framed records back to back, each
// as seq (8 bytes, big-endian), length (4 bytes) and the record.

const eventEntryHeader = 8 + 4

// appendEventEntry adds one event record to a batch value.
func appendEventEntry(dst []byte, seq uint64, framed []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, seq)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(framed)))
	return append(dst, framed...)
}

// eachEventEntry calls fn with each record of a batch value, in order,
// until fn says stop. A value that does not parse is damage.
func eachEventEntry(recs []byte, fn func(seq uint64, framed []byte) (stop bool, err error)) error {
	for len(recs) > 0 {
		if len(recs) < eventEntryHeader {
			return fmt.Errorf("%w: an event batch ends inside an entry header", ErrDamaged)
		}
		seq := binary.BigEndian.Uint64(recs)
		n := binary.BigEndian.Uint32(recs[8:])
		recs = recs[eventEntryHeader:]
		if uint64(n) > uint64(len(recs)) {
			return fmt.Errorf("%w: the event batch entry of seq %d says %d bytes, %d are left", ErrDamaged, seq, n, len(recs))
		}
		stop, err := fn(seq, recs[:n:n])
		if err != nil || stop {
			return err
		}
		recs = recs[n:]
	}
	return nil
}
