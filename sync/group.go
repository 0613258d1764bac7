package sync

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/gatewayd/gatewayd/store"
)

// reconcileGroup keeps a bound gateway group as a security group in the
// directory (SPEC 4.4): taken over when exactly one group has its name,
// created when none or several do, and with the members that have an
// account there. An unbound or deleted group's remote copy is left as it
// is; its members' accounts follow their own bindings.
func (e *Engine) reconcileGroup(ctx context.Context, k pairKey, p pending) {
	d := e.directories()[k.dir]
	if d == nil { // forgotten since the work was queued
		return
	}
	gc, ok := d.Connector.(GroupConnector)
	if !ok {
		return
	}
	g, err := e.st.GroupByID(k.id)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			e.log.Error("sync: reading group", "err", err)
		}
		return
	}
	bound, err := e.groupBound(k.dir, g.ID)
	if err != nil || !bound {
		return
	}
	st, err := e.st.SyncStateOf(k.dir, g.ID)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			e.log.Error("sync: reading sync state", "err", err)
			return
		}
		st = &store.SyncState{Directory: k.dir, SubjectID: g.ID, Kind: store.BindGroup}
	}
	if st.Failed && p.trig == trigRetry {
		return
	}
	orig := *st
	if !p.retry {
		st.Attempts = 0
	}
	st.Failed, st.LastError = false, ""
	err = e.applyGroup(ctx, d, gc, g, st)
	switch {
	case errors.Is(err, errMoreMembers):
		// Come back after the pairs queued behind this one have had
		// their turn: a big group must not starve its worker's users.
		st.Attempts = 0
		e.enqueue(k, pending{trig: trigChange})
	case err != nil:
		e.handleFailure(d, nil, g, st, p, err)
	default:
		st.Attempts = 0
	}
	e.save(st, orig)
}

// membershipStep bounds the member adds and removes of one group
// reconcile; the rest follows when the pair comes round again.
const membershipStep = 16

var errMoreMembers = errors.New("more membership changes to make")

func (e *Engine) groupBound(dir, groupID string) (bool, error) {
	bs, err := e.st.BindingsOfSubject(groupID)
	if err != nil {
		return false, err
	}
	for _, b := range bs {
		if b.Directory == dir {
			return true, nil
		}
	}
	return false, nil
}

func (e *Engine) applyGroup(ctx context.Context, d *Directory, gc GroupConnector, g *store.Group, st *store.SyncState) error {
	if !st.Provisioned {
		ctx2, cancel := e.call(ctx)
		found, err := gc.FindGroups(ctx2, g.Name)
		cancel()
		if err != nil {
			return fail(store.EventGroupCreateProvision, err)
		}
		if len(found) == 1 {
			st.RemoteID, st.Provisioned, st.ProvisionedAt = found[0].ID, true, e.cfg.Now()
			e.emitGroup(d, g, store.EventGroupUpdateProvision, store.OutcomeSuccess, "existing group taken over")
		} else {
			ctx2, cancel := e.call(ctx)
			rg, err := gc.CreateGroup(ctx2, GroupSpec{Name: g.Name, Description: g.Description, MailNickname: mailNickname(g.Name)})
			cancel()
			if err != nil {
				return fail(store.EventGroupCreateProvision, err)
			}
			st.RemoteID, st.Provisioned, st.ProvisionedAt = rg.ID, true, e.cfg.Now()
			detail := "created"
			if len(found) > 1 {
				detail = fmt.Sprintf("created: %d groups named %q already exist, none was taken over", len(found), g.Name)
			}
			e.emitGroup(d, g, store.EventGroupCreateProvision, store.OutcomeSuccess, detail)
		}
		st.AppliedHash = ""
	}

	want, err := e.wantedMembers(d.Name, g.ID)
	if err != nil {
		return fail(store.EventGroupUpdateProvision, err)
	}
	hash := memberHash(want)
	if hash == st.AppliedHash {
		return nil
	}
	ctx2, cancel := e.call(ctx)
	have, err := gc.ListMembers(ctx2, st.RemoteID)
	cancel()
	if err != nil {
		return fail(store.EventGroupUpdateProvision, e.notFoundGrace(st, err))
	}
	var added, removed int
	for _, id := range want {
		if added+removed == membershipStep {
			break
		}
		if !slices.Contains(have, id) {
			ctx2, cancel := e.call(ctx)
			err := gc.AddMember(ctx2, st.RemoteID, id)
			cancel()
			if err != nil {
				return fail(store.EventGroupUpdateProvision, e.notFoundGrace(st, err))
			}
			added++
		}
	}
	for _, id := range have {
		if added+removed == membershipStep {
			break
		}
		if !slices.Contains(want, id) {
			ctx2, cancel := e.call(ctx)
			err := gc.RemoveMember(ctx2, st.RemoteID, id)
			cancel()
			if err != nil {
				return fail(store.EventGroupUpdateProvision, e.notFoundGrace(st, err))
			}
			removed++
		}
	}
	if added+removed > 0 {
		e.emitGroup(d, g, store.EventGroupUpdateProvision, store.OutcomeSuccess, fmt.Sprintf("members: %d added, %d removed", added, removed))
	}
	if added+removed == membershipStep {
		return errMoreMembers
	}
	st.AppliedHash = hash
	return nil
}

// wantedMembers are the remote ids of the group's members that have an
// account in dir (sorted).
func (e *Engine) wantedMembers(dir, groupID string) ([]string, error) {
	members, err := e.st.MembersOf(groupID)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, u := range members {
		st, err := e.st.SyncStateOf(dir, u.ID)
		if err != nil {
			continue
		}
		if st.Provisioned && st.RemoteID != "" {
			ids = append(ids, st.RemoteID)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

func memberHash(ids []string) string {
	h := sha256.New()
	for _, id := range ids {
		h.Write([]byte(id))
		h.Write([]byte{0})
	}
	return "members:" + hex.EncodeToString(h.Sum(nil)[:8])
}

// mailNickname derives a directory-safe alias from a group name.
func mailNickname(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	if b.Len() == 0 {
		return "group"
	}
	return b.String()
}

func (e *Engine) emitGroup(d *Directory, g *store.Group, typ store.EventType, outcome, detail string) {
	e.st.Emit(store.Event{Type: typ, Outcome: outcome, Directory: d.Name, GroupID: g.ID, Group: g.Name, Source: "sync", Detail: detail})
	e.m.events.WithLabelValues(d.Name, string(typ)).Inc()
}
