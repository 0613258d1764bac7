package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// metaHealthProbe is the meta key Health's test write stamps (unix
// seconds). Nothing reads it; it only makes the write a real one.
const metaHealthProbe = "health_probe"

// healthProbeInterval is how stale the last journal write may be before
// Health makes a test write: load balancers poll every few seconds, and
// an fsync per poll is not free.
const healthProbeInterval = 5 * time.Second

// monoBase anchors monoNow: durations since it use the monotonic clock,
// so a wall-clock step cannot stop or hurry the probes.
var monoBase = time.Now()

// monoNow is nanoseconds on the monotonic clock, never 0.
func monoNow() int64 { return int64(time.Since(monoBase)) + 1 }

// journalHealth is what the writes tell Health. Every write records its
// outcome (under Store.mu, so the last outcome is the newest); a success
// costs two atomic operations and no lock.
type journalHealth struct {
	lastAt  atomic.Int64                   // monoNow of the last journal write, 0: none yet
	failure atomic.Pointer[journalFailure] // nil: the last journal write committed

	interval time.Duration // 0: healthProbeInterval (tests shorten it)

	mu       sync.Mutex
	probing  chan struct{} // non-nil while a test write runs; closed when it ends
	batchErr error         // the event writer's failing batch, nil when it is not failing

	minFree uint64                           // Options.MinFreeSpace; 0: no floor
	statfs  func(dir string) (uint64, error) // free bytes; tests inject one
	free    atomic.Pointer[freeSpaceSample]  // the last answer, reused for freeSpaceTTL
}

// freeSpaceTTL is how long one statfs answer is reused: balancers may
// poll /healthz several times a second, and free space does not move
// that fast.
const freeSpaceTTL = time.Second

type freeSpaceSample struct {
	at  int64 // monoNow
	err error
}

// availableBytes is the space on dir's file system that a process
// without root's reserve may still use (statfs f_bavail), the space the
// journal can actually grow into when gatewayd runs unprivileged.
func availableBytes(dir string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// checkFreeSpace fails when data_dir's free space is below the floor.
func (s *Store) checkFreeSpace() error {
	h := &s.health
	if h.minFree == 0 {
		return nil
	}
	if c := h.free.Load(); c != nil && monoNow()-c.at < int64(freeSpaceTTL) {
		return c.err
	}
	statfs := h.statfs
	if statfs == nil {
		statfs = availableBytes
	}
	free, err := statfs(s.dir)
	switch {
	case err != nil:
		err = fmt.Errorf("state journal %s: cannot read the free space of data dir %s: %w", s.path, s.dir, err)
	case free < h.minFree:
		err = fmt.Errorf("data dir %s has %s free, below the floor of %s ([store] min_free_space): journal writes will soon fail with \"no space left on device\"; free space on that file system or grow it",
			s.dir, ByteSize(free).approx(), ByteSize(h.minFree).approx())
	}
	h.free.Store(&freeSpaceSample{at: monoNow(), err: err})
	return err
}

type journalFailure struct{ err error }

// noteWrite records the outcome of a bbolt write transaction.
func (h *journalHealth) noteWrite(err error) {
	h.lastAt.Store(monoNow())
	if err != nil {
		h.failure.Store(&journalFailure{err})
	} else if h.failure.Load() != nil {
		h.failure.Store(nil)
	}
}

// noteBatch records whether the event writer's current batch fails.
func (h *journalHealth) noteBatch(err error, attempt int) {
	if err != nil {
		err = fmt.Errorf("audit events cannot be written (attempt %d; logins block once %d are queued): %w", attempt, emitQueueSize, err)
	}
	h.mu.Lock()
	h.batchErr = err
	h.mu.Unlock()
}

func (h *journalHealth) lastErr() error {
	if f := h.failure.Load(); f != nil {
		return f.err
	}
	return nil
}

// Health reports whether the store can take writes: nil when it can; an
// error when it is closed, the event writer stopped or keeps failing, the
// last journal write failed (disk full, I/O error, hung disk), or the free
// space in the data dir is below Options.MinFreeSpace (read at most once a
// second). It
// answers from the outcome of the last write when that is recent, and
// otherwise makes a tiny test write (a meta key, fsync'd like any write),
// so it costs at most one fsync per few seconds however often it is
// called. It returns by ctx's deadline even when the disk hangs.
func (s *Store) Health(ctx context.Context) error {
	if s.closed.Load() || isClosed(s.closing) {
		return ErrClosed
	}
	if isClosed(s.writerDone) {
		// lostEvents is set before writerDone closes.
		return fmt.Errorf("state journal %s: the audit event writer stopped: %v", s.path, s.lostEvents)
	}
	h := &s.health
	h.mu.Lock()
	batchErr := h.batchErr
	h.mu.Unlock()
	if batchErr != nil {
		return batchErr
	}
	if err := s.checkFreeSpace(); err != nil {
		return err
	}
	every := h.interval
	if every == 0 {
		every = healthProbeInterval
	}
	if at := h.lastAt.Load(); at != 0 && monoNow()-at < int64(every) {
		return h.lastErr()
	}
	return s.probeJournal(ctx)
}

// probeJournal makes the test write, or joins one that is running, so a
// hung disk holds one goroutine however many checks wait on it.
func (s *Store) probeJournal(ctx context.Context) error {
	h := &s.health
	h.mu.Lock()
	done := h.probing
	if done == nil {
		done = make(chan struct{})
		h.probing = done
		go func() {
			err := s.write(func(w *wtxn) error {
				return w.tx.setMeta(metaHealthProbe, uint64(time.Now().Unix()))
			})
			if err != nil && !errors.Is(err, ErrClosed) {
				// write records failures of the transaction itself, not
				// of the put inside it.
				h.noteWrite(err)
			}
			h.mu.Lock()
			h.probing = nil
			h.mu.Unlock()
			close(done)
		}()
	}
	h.mu.Unlock()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("state journal %s: a test write did not finish in time (%w): the disk may be hung, or a long write holds the journal", s.path, ctx.Err())
	}
	if s.closed.Load() {
		return ErrClosed
	}
	return h.lastErr()
}
