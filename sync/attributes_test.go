package sync_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gwconfig "github.com/gatewayd/gatewayd/config"
	"github.com/gatewayd/gatewayd/internal/testutil"
	"github.com/gatewayd/gatewayd/store"
	gwsync "github.com/gatewayd/gatewayd/sync"
	"github.com/gatewayd/gatewayd/sync/entra"
	"github.com/gatewayd/gatewayd/sync/google"
)

// attrBackend is what the attribute tests need of a fake directory on
// top of backend.
type attrBackend interface {
	backend
	// defaults is the directory type's default mapping.
	defaults() map[string]string
	// attr reads a gateway attribute's value on the account, through the
	// default mapping.
	attr(upn, name string) string
	// manager is the principal name of the account's manager, "" for none.
	manager(upn string) string
	// refuse makes the directory refuse a gateway attribute's property.
	refuse(name string)
	// sent reports whether s occurs in any request the fake received.
	sent(s string) bool
	resetLog()
}

func (b *entraBackend) defaults() map[string]string { return entra.DefaultAttributes() }

func (b *entraBackend) attr(upn, name string) string {
	u, _ := b.fg.User(upn)
	v, ok := u.Attributes[entra.DefaultAttributes()[name]]
	if !ok {
		return ""
	}
	if s, ok := v.([]string); ok {
		return strings.Join(s, ",")
	}
	return fmt.Sprint(v)
}

func (b *entraBackend) manager(upn string) string {
	id, _ := b.fg.Manager(upn)
	if id == "" {
		return ""
	}
	m, _ := b.fg.User(id)
	return m.UserPrincipalName
}

func (b *entraBackend) refuse(name string) {
	b.fg.RefuseProperty(entra.DefaultAttributes()[name], true)
}

func (b *entraBackend) sent(s string) bool {
	for _, r := range b.fg.Requests() {
		if strings.Contains(r.Path+"?"+r.RawQuery+"\n"+r.Body, s) {
			return true
		}
	}
	return false
}

func (b *entraBackend) resetLog() { b.fg.ResetLog() }

func (b *googleBackend) defaults() map[string]string { return google.DefaultAttributes() }

func (b *googleBackend) attr(upn, name string) string {
	u, _ := b.fg.User(upn)
	field, key, _ := strings.Cut(google.DefaultAttributes()[name], ".")
	switch field {
	case "organizations":
		if v, ok := u.Organization()[key]; ok {
			return fmt.Sprint(v)
		}
		return ""
	case "phones":
		return u.Phone(key)
	case "addresses":
		return u.Address(key)
	}
	return ""
}

func (b *googleBackend) manager(upn string) string {
	u, _ := b.fg.User(upn)
	return u.Relation("manager")
}

func (b *googleBackend) refuse(name string) { b.fg.RefuseField(google.DefaultAttributes()[name], true) }
func (b *googleBackend) sent(s string) bool { return b.fg.Saw(s) }
func (b *googleBackend) resetLog()          { b.fg.ResetLog() }

// attrRig is a rig whose directory has its type's default mapping.
func attrRig(t *testing.T, newB func() backend) (*rig, attrBackend) {
	b := newB().(attrBackend)
	return newRig(t, b, gwsync.Directory{Attributes: b.defaults()}, gwsync.Config{}), b
}

func (r *rig) setAttrs(u *store.User, kv ...string) {
	r.t.Helper()
	if _, err := r.st.UpdateUser(u.ID, func(x *store.User) error {
		if x.Attributes == nil {
			x.Attributes = map[string]string{}
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "" {
				delete(x.Attributes, kv[i])
			} else {
				x.Attributes[kv[i]] = kv[i+1]
			}
		}
		return nil
	}); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) waitManager(b attrBackend, upn, want string) {
	r.t.Helper()
	testutil.Eventually(r.t, 10*time.Second, func() bool { return b.manager(upn) == want },
		fmt.Sprintf("manager of %s is %q", upn, want))
}

// TestAttributesAndManager (issue 11): a user holding gateway-only
// attributes, a manager and a title provisions to both directories; only
// mapped attributes arrive, the manager as a reference to the manager's
// account, which follows the attribute.
func TestAttributesAndManager(t *testing.T) {
	eachBackend(t, func(t *testing.T, newB func() backend) {
		r, b := attrRig(t, newB)
		boss := r.user("boss", nil)
		r.bind(store.BindUser, boss.ID)
		r.waitExists("boss@corp.test")
		boss2 := r.user("boss2", nil)
		r.bind(store.BindUser, boss2.ID)
		r.waitExists("boss2@corp.test")

		dana := r.user("dana", func(u *store.User) {
			u.Attributes = map[string]string{
				"loginShell": "/bin/zsh-gw-only", "homeDirectory": "/home/dana-gw-only", "ad_domain": "CORP-GW-ONLY",
				"manager": "boss", "title": "Engineer", "favouriteColour": "teal-not-mapped",
			}
		})
		r.bind(store.BindUser, dana.ID)
		r.waitExists("dana@corp.test")
		r.waitManager(b, "dana@corp.test", "boss@corp.test")
		if got := b.attr("dana@corp.test", "title"); got != "Engineer" {
			t.Fatalf("title %q", got)
		}
		st := r.settle(dana.ID)
		if !st.Provisioned || !st.Enabled || st.LastError != "" {
			t.Fatalf("sync state %+v", st)
		}
		if !b.sent("Engineer") {
			t.Fatal("the request log shows nothing")
		}
		for _, s := range []string{"loginShell", "homeDirectory", "ad_domain", "/bin/zsh-gw-only", "/home/dana-gw-only",
			"CORP-GW-ONLY", "favouriteColour", "teal-not-mapped"} {
			if b.sent(s) {
				t.Errorf("%q reached the directory", s)
			}
		}
		if n := len(r.events(string(store.EventUserUpdateProvisionFailed))); n != 0 {
			t.Fatalf("%d failures", n)
		}

		r.setAttrs(dana, "manager", "boss2")
		r.waitManager(b, "dana@corp.test", "boss2@corp.test")
		r.setAttrs(dana, "manager", "")
		r.waitManager(b, "dana@corp.test", "")
		r.setAttrs(dana, "title", "")
		testutil.Eventually(t, 10*time.Second, func() bool { return b.attr("dana@corp.test", "title") == "" }, "title cleared")
		if st := r.settle(dana.ID); st.LastError != "" || st.Failed {
			t.Fatalf("sync state %+v", st)
		}
	})
}

// TestManagerProvisionedLater: a manager without an account yet is left
// out, with the reason on the binding; once the manager's account is
// made, the report points at it.
func TestManagerProvisionedLater(t *testing.T) {
	eachBackend(t, func(t *testing.T, newB func() backend) {
		r, b := attrRig(t, newB)
		late := r.user("late", nil)
		erin := r.user("erin", func(u *store.User) { u.Attributes = map[string]string{"manager": "late", "title": "Analyst"} })
		r.bind(store.BindUser, erin.ID)
		r.waitExists("erin@corp.test")
		st := r.settle(erin.ID)
		if !st.Provisioned || !strings.Contains(st.LastError, "manager not set") || !strings.Contains(st.LastError, "late") {
			t.Fatalf("sync state %+v", st)
		}
		if b.manager("erin@corp.test") != "" || b.attr("erin@corp.test", "title") != "Analyst" {
			t.Fatal("erin provisioned wrongly")
		}
		r.bind(store.BindUser, late.ID)
		r.waitManager(b, "erin@corp.test", "late@corp.test")
		if st := r.settle(erin.ID); st.LastError != "" {
			t.Fatalf("the note stayed: %q", st.LastError)
		}
	})
}

// TestRefusedAttribute: an attribute the directory refuses fails that
// attribute, never the account: one user_update_provision_failed event
// names it, the account stays provisioned and enabled with the other
// attributes, and the value is not sent again until it changes.
func TestRefusedAttribute(t *testing.T) {
	eachBackend(t, func(t *testing.T, newB func() backend) {
		r, b := attrRig(t, newB)
		b.refuse("employeeType")
		failed := string(store.EventUserUpdateProvisionFailed)
		fay := r.user("fay", func(u *store.User) {
			u.Attributes = map[string]string{"employeeType": "Contractor-refused", "title": "Designer", "department": "Art"}
		})
		r.bind(store.BindUser, fay.ID)
		r.waitEnabled("fay@corp.test", true)
		r.waitEvents(failed, 1)
		ev := r.events(failed)[0]
		if !strings.Contains(ev.Detail, "employeeType") || !strings.Contains(ev.Detail, "refused") || ev.Username != "fay" {
			t.Fatalf("event %+v", ev)
		}
		st := r.settle(fay.ID)
		if !st.Provisioned || !st.Enabled || st.Failed || st.Attempts != 0 {
			t.Fatalf("sync state %+v", st)
		}
		if b.attr("fay@corp.test", "title") != "Designer" || b.attr("fay@corp.test", "department") != "Art" {
			t.Fatal("the other attributes were not applied")
		}
		if b.attr("fay@corp.test", "employeeType") != "" {
			t.Fatal("the refused attribute is set")
		}

		// Another change: the refused value is not sent again.
		b.resetLog()
		r.setAttrs(fay, "department", "Design")
		testutil.Eventually(t, 10*time.Second, func() bool { return b.attr("fay@corp.test", "department") == "Design" }, "department updated")
		r.settle(fay.ID)
		if b.sent("Contractor-refused") {
			t.Fatal("the refused value was sent again")
		}
		if n := len(r.events(failed)); n != 1 {
			t.Fatalf("%d failure events, want still 1", n)
		}
		// A new value is tried (and refused again, once).
		r.setAttrs(fay, "employeeType", "Staff-refused")
		r.waitEvents(failed, 2)
		r.settle(fay.ID)
		if n := len(r.events(failed)); n != 2 {
			t.Fatalf("%d failure events, want 2", n)
		}
		if !b.enabled("fay@corp.test") {
			t.Fatal("the account was disabled")
		}
	})
}

// ---- configuration ----------------------------------------------------------------

type attrRoot struct {
	Dirs []gwconfig.DirectoryBlock `toml:"directory"`
}

func parseAttrBlocks(t *testing.T, text string) ([]gwconfig.DirectoryBlock, error) {
	t.Helper()
	var r attrRoot
	err := testutil.ParseRoot(t, &r, text)
	return r.Dirs, err
}

// blockHeads are valid [[directory]] blocks of each type, 6 lines each;
// an attributes line follows as line 7.
func blockHeads(t *testing.T) map[string]string {
	t.Setenv("GW_ATTR_TEST_SECRET", "s3cret")
	key := filepath.Join(t.TempDir(), "sa.json")
	if err := os.WriteFile(key, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		"entra": "[[directory]]\ntype = \"entra\"\nname = \"m365\"\ntenant_id = \"00000000-0000-0000-0000-000000000001\"\n" +
			"client_id = \"11111111-1111-1111-1111-111111111111\"\nclient_secret = \"env:GW_ATTR_TEST_SECRET\"\n",
		"google": "[[directory]]\ntype = \"google\"\nname = \"ws\"\ncustomer_id = \"C01abc234\"\n" +
			"credentials_file = \"" + key + "\"\nadmin_subject = \"admin@example.com\"\n",
	}
}

func TestAttributeMappingConfig(t *testing.T) {
	heads := blockHeads(t)
	defaults := map[string]map[string]string{"entra": entra.DefaultAttributes(), "google": google.DefaultAttributes()}
	override := map[string]string{"entra": "extension_0f9e8d7c_title", "google": "HR.title"}
	for typ, head := range heads {
		t.Run(typ, func(t *testing.T) {
			// Override one default, drop one, add a free-form one: the
			// others keep their defaults.
			text := head + fmt.Sprintf("attributes = { title = %q, mobile = \"\", costCenter = %q }\n", override[typ],
				map[string]string{"entra": "extension_0f9e8d7c_costCenter", "google": "organizations.costCenter"}[typ])
			blocks, err := parseAttrBlocks(t, text)
			if err != nil {
				t.Fatal(err)
			}
			c := blocks[0].(gwsync.DirectoryConfig).Common()
			for name, remote := range defaults[typ] {
				want := remote
				switch name {
				case "title":
					want = override[typ]
				case "mobile":
					want = ""
				}
				if c.Attributes[name] != want {
					t.Errorf("%s → %q, want %q", name, c.Attributes[name], want)
				}
			}
			d := c.Directory(nil)
			if _, ok := d.Attributes["mobile"]; ok || d.Attributes["costCenter"] == "" || d.Attributes["manager"] == "" {
				t.Errorf("engine mapping %v", d.Attributes)
			}

			for _, tc := range []struct {
				line, msg string
			}{
				{`attributes = { loginShell = "loginShell" }`, "gateway-only"},
				{`attributes = { homeDirectory = "x" }`, "gateway-only"},
				{`attributes = { ad_domain = "x" }`, "gateway-only"},
				{`attributes = { manager = "title" }`, "manager reference"},
				{fmt.Sprintf(`attributes = { title = %q }`, defaults[typ]["manager"]), "manager reference"},
				{`attributes = { title = "a b" }`, "not a property name"},
				{fmt.Sprintf(`attributes = { company = %q }`, defaults[typ]["department"]), "both map to"},
			} {
				_, err := parseAttrBlocks(t, head+"\n"+tc.line+"\n")
				testutil.WantProblem(t, err, "directory[0].attributes", 8, tc.msg)
			}
			// Dropping a gateway-only name is harmless.
			if _, err := parseAttrBlocks(t, head+`attributes = { loginShell = "" }`+"\n"); err != nil {
				t.Errorf("loginShell = \"\": %v", err)
			}
		})
	}
}

func TestTypeSpecificProperties(t *testing.T) {
	heads := blockHeads(t)
	for typ, bad := range map[string]string{"entra": "passwordProfile", "google": "organizations.salary"} {
		_, err := parseAttrBlocks(t, heads[typ]+fmt.Sprintf("attributes = { title = %q }\n", bad))
		testutil.WantProblem(t, err, "directory[0].attributes", 7, bad)
	}
}
