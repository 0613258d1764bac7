package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/url"
	"time"

	"github.com/gatewayd/gatewayd/config"
	"github.com/gatewayd/gatewayd/portal"
	"github.com/gatewayd/gatewayd/secret"
	gwsync "github.com/gatewayd/gatewayd/sync"
)

// enginePolicies gives the self-service page the password policies of the
// directories a user is bound to, from the sync engine (the page itself
// must not know the directories).
type enginePolicies struct{ e *gwsync.Engine }

func (p enginePolicies) PoliciesFor(userID string) ([]portal.Policy, error) {
	bs, err := p.e.PoliciesOf(userID)
	if err != nil {
		return nil, err
	}
	out := make([]portal.Policy, len(bs))
	for i, b := range bs {
		pol := b.Policy
		out[i] = portal.Policy{Directory: b.Directory, MinLength: pol.MinLength, MaxLength: pol.MaxLength,
			MinCharacterClasses: pol.MinCharacterClasses, Check: func(pw secret.String) error { return pol.Check(pw) }}
	}
	return out, nil
}

// addPortal builds the self-service page from [portal] when it names a
// listener, and subscribes it to the store so a password change, suspend
// or delete ends the user's sessions.
func (d *daemon) addPortal() error {
	c := d.cfg
	if !c.Portal.Enabled() {
		return nil
	}
	var pol portal.Policies
	if d.engine != nil {
		pol = enginePolicies{d.engine}
	}
	p, err := portal.New(c.Portal, d.auth, d.store, pol, d.log.With("component", "portal"), d.reg)
	if err != nil {
		return config.Problems{c.Errorf("portal", "%v", err)}
	}
	d.portal = p
	d.store.Subscribe(p.HandleChange)
	d.doors = append(d.doors, namedDoor{"portal.listen", p})
	return nil
}

// userInvite is `gatewayd user invite USER [-ttl 72h]`: a one-time
// activation link for the self-service page (POST /v1/users/{user}/invite).
func (c *cli) userInvite(fs *flag.FlagSet) func([]string) error {
	ttl := fs.Duration("ttl", 0, "how long the link stays valid (default: [portal] invite_ttl)")
	return func(pos []string) error {
		if err := needArgs(pos, 1, "one USER (username or id)"); err != nil {
			return err
		}
		var body any
		if *ttl != 0 {
			body = map[string]string{"ttl": ttl.String()}
		}
		var raw json.RawMessage
		if err := c.client.do("POST", "/v1/users/"+url.PathEscape(pos[0])+"/invite", body, &raw); err != nil {
			return err
		}
		return c.emit(raw, func() error {
			var v struct {
				URL       string    `json:"url"`
				ExpiresAt time.Time `json:"expires_at"`
			}
			if err := json.Unmarshal(raw, &v); err != nil {
				return err
			}
			fmt.Fprintln(c.stdout, v.URL)
			fmt.Fprintf(c.stdout, "expires %s; the link works once, and a new invite or any password change revokes it\n", v.ExpiresAt.Format(time.RFC3339))
			return nil
		})
	}
}
