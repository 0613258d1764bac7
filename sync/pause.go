package sync

// Pause and resume per directory (SPEC 6.6). While a directory is paused
// its workers send nothing: every job popped for it is parked here,
// merged per pair (the strongest trigger and the newest plaintext win,
// as in the queues). Resume puts the parked jobs back and scans the
// directory, so what changed while paused, including before a restart
// (the daemon pauses again at start from the store's record), applies.
// A plaintext parked in memory does not survive a restart: after one the
// pair is marked password_push_pending at resume and the next login
// completes the push (SPEC 3.7).

// Pause stops all calls to the directory; its work waits. It reports
// whether the directory is configured.
func (e *Engine) Pause(name string) bool {
	if _, ok := e.directories()[name]; !ok {
		return false
	}
	e.pauseMu.Lock()
	defer e.pauseMu.Unlock()
	if e.paused == nil {
		e.paused = map[string]bool{}
	}
	if !e.paused[name] {
		e.paused[name] = true
		e.log.Info("sync: directory paused; its work waits until it is resumed", "directory", name)
	}
	return true
}

// Resume lets the directory's work run again: the parked jobs are queued
// and every bound or provisioned pair of the directory is reconciled. It
// reports whether the directory is configured.
func (e *Engine) Resume(name string) bool {
	if _, ok := e.directories()[name]; !ok {
		return false
	}
	e.pauseMu.Lock()
	was := e.paused[name]
	delete(e.paused, name)
	var back []pairKey
	var jobs []pending
	for k, p := range e.parked {
		if k.dir == name {
			back, jobs = append(back, k), append(jobs, p)
			delete(e.parked, k)
		}
	}
	e.pauseMu.Unlock()
	for i, k := range back {
		e.enqueue(k, jobs[i])
	}
	if was {
		e.log.Info("sync: directory resumed", "directory", name, "parked", len(back))
	}
	e.scanDirectory(name)
	return true
}

// Paused reports whether the directory is paused.
func (e *Engine) Paused(name string) bool {
	e.pauseMu.Lock()
	defer e.pauseMu.Unlock()
	return e.paused[name]
}

// park keeps the job of a paused directory; it reports whether it did.
func (e *Engine) park(k pairKey, p pending) bool {
	e.pauseMu.Lock()
	defer e.pauseMu.Unlock()
	if !e.paused[k.dir] {
		return false
	}
	if e.parked == nil {
		e.parked = map[pairKey]pending{}
	}
	cur, ok := e.parked[k]
	if !ok {
		e.parked[k] = p
		return true
	}
	if !p.pw.IsEmpty() {
		cur.pw.Wipe()
		cur.pw = p.pw
	}
	cur.trig = max(cur.trig, p.trig)
	cur.retry = cur.retry && p.retry
	e.parked[k] = cur
	return true
}

// ParkedJobs counts the jobs waiting for a paused directory.
func (e *Engine) ParkedJobs(name string) int {
	e.pauseMu.Lock()
	defer e.pauseMu.Unlock()
	n := 0
	for k := range e.parked {
		if k.dir == name {
			n++
		}
	}
	return n
}
