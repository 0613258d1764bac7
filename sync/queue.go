package sync

import gosync "sync"

// queue is one worker's FIFO of pairs. A pair already waiting absorbs new
// work (coalescing): the strongest trigger and the newest plaintext win,
// so a login storm does not queue a thousand pushes.
type queue struct {
	mu     gosync.Mutex
	cond   *gosync.Cond
	order  []pairKey
	items  map[pairKey]pending
	closed bool
}

func newQueue() *queue {
	q := &queue{items: map[pairKey]pending{}}
	q.cond = gosync.NewCond(&q.mu)
	return q
}

func (q *queue) push(k pairKey, p pending) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		p.pw.Wipe()
		return
	}
	cur, ok := q.items[k]
	if !ok {
		q.order = append(q.order, k)
		q.items[k] = p
		q.cond.Signal()
		return
	}
	if !p.pw.IsEmpty() {
		cur.pw.Wipe()
		cur.pw = p.pw
	}
	if p.trig > cur.trig {
		cur.trig = p.trig
	}
	cur.retry = cur.retry && p.retry
	cur.claimTries = max(cur.claimTries, p.claimTries)
	q.items[k] = cur
}

func (q *queue) pop() (pairKey, pending, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.order) == 0 && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		for _, p := range q.items {
			p.pw.Wipe()
		}
		return pairKey{}, pending{}, false
	}
	k := q.order[0]
	q.order = q.order[1:]
	p := q.items[k]
	delete(q.items, k)
	return k, p, true
}

func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
}
