package main

import (
	"encoding"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	gatewayd "github.com/gatewayd/gatewayd"
	"github.com/gatewayd/gatewayd/config"
	"github.com/gatewayd/gatewayd/internal/fakegraph"
	"github.com/gatewayd/gatewayd/internal/testutil"
)

// TestExampleRoundTrip: the shipped example loads as is, every key it
// shows (commented out or not) is one a component accepts, and every key
// a component accepts is shown in it.
func TestExampleRoundTrip(t *testing.T) {
	c, err := loadConfig("")
	if err != nil {
		t.Fatalf("the embedded example must load as is:\n%v", err)
	}
	if c.DataDir != "./data" || c.Admin.Listen != "127.0.0.1:8480" || c.LDAP.BaseDN == "" || c.Authn.CacheTTL != 15*time.Minute {
		t.Fatalf("unexpected example values: %+v", c)
	}
	accepted := acceptedKeys(reflect.TypeFor[fileConfig](), "")
	shown := exampleKeys(string(gatewayd.ExampleConfig))
	if len(accepted) < 50 || len(shown) < 50 {
		t.Fatalf("too few keys found: %d accepted, %d shown", len(accepted), len(shown))
	}
	var missing, unknown []string
	for k := range accepted {
		if !shown[k] {
			missing = append(missing, k)
		}
	}
	for k := range shown {
		if parent := k[:max(0, strings.LastIndexByte(k, '.'))]; !accepted[k] && !freeFormMaps[parent] {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(unknown)
	if len(missing) > 0 {
		t.Errorf("keys the components accept that gatewayd.toml.example does not document: %v", missing)
	}
	if len(unknown) > 0 {
		t.Errorf("keys gatewayd.toml.example shows that no component accepts: %v", unknown)
	}
}

// freeFormMaps are accepted keys whose value is a table of keys the
// administrator chooses (a directory's attribute mapping).
var freeFormMaps = map[string]bool{}

var (
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
	tomlUnmarshaler = reflect.TypeFor[toml.Unmarshaler]()
	directoryBlocks = reflect.TypeFor[[]config.DirectoryBlock]()
)

// acceptedKeys lists the key paths (no array indexes) a struct decodes.
func acceptedKeys(t reflect.Type, prefix string) map[string]bool {
	keys := map[string]bool{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if name == "-" {
			continue
		}
		if f.Anonymous && name == "" {
			for k := range acceptedKeys(f.Type, prefix) {
				keys[k] = true
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		path := prefix + name
		ft := f.Type
		switch {
		case ft == directoryBlocks:
			for _, typ := range config.DirectoryTypes() {
				blk := reflect.TypeOf(config.NewDirectoryBlock(typ)).Elem()
				for k := range acceptedKeys(blk, path+".") {
					keys[k] = true
				}
			}
			continue
		case ft.Kind() == reflect.Slice && isTable(ft.Elem()):
			ft = ft.Elem()
		}
		if isTable(ft) {
			for k := range acceptedKeys(ft, path+".") {
				keys[k] = true
			}
			continue
		}
		if ft.Kind() == reflect.Map {
			freeFormMaps[path] = true
		}
		keys[path] = true
	}
	return keys
}

func isTable(t reflect.Type) bool {
	if t.Kind() != reflect.Struct {
		return false
	}
	p := reflect.PointerTo(t)
	return !p.Implements(textUnmarshaler) && !p.Implements(tomlUnmarshaler)
}

var (
	exampleHeader = regexp.MustCompile(`^\[\[?\s*([a-z0-9_.]+)\s*\]\]?$`)
	// A key line's value looks like a TOML value, so prose such as
	// "cn=<name>,ou=groups" is not taken for a key.
	exampleKey = regexp.MustCompile(`^([a-z0-9_]+)\s*=\s*(["'\[{0-9-]|true|false)(.*)$`)
	inlineKey  = regexp.MustCompile(`([a-z_]+)\s*=`)
)

// exampleKeys lists the key paths the example shows, in live lines and in
// commented-out ones ("# key = value", "# [[radius.client]]").
func exampleKeys(text string) map[string]bool {
	keys := map[string]bool{}
	table := ""
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		for strings.HasPrefix(line, "#") {
			line = strings.TrimSpace(strings.TrimPrefix(line, "#"))
		}
		if m := exampleHeader.FindStringSubmatch(line); m != nil {
			table = m[1] + "."
			continue
		}
		m := exampleKey.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		path := table + m[1]
		if v := m[2] + m[3]; strings.HasPrefix(v, "{") {
			if freeFormMaps[path] {
				keys[path] = true // its keys are the administrator's choice
			}
			inline, _, _ := strings.Cut(v, "}")
			for _, im := range inlineKey.FindAllStringSubmatch(inline, -1) {
				keys[path+"."+im[1]] = true
			}
			continue
		}
		keys[path] = true
	}
	return keys
}

// TestCheckConfigAndServeAgree: a 32 MiB max_message_bytes is refused by
// both, at the key's line; 16 MiB is accepted by both.
func TestCheckConfigAndServeAgree(t *testing.T) {
	for _, tc := range []struct {
		bytes int
		ok    bool
	}{{32 << 20, false}, {16 << 20, true}} {
		t.Run(fmt.Sprint(tc.bytes), func(t *testing.T) {
			dir := t.TempDir()
			ldapAddr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
			text := strings.Replace(testConfig(t, dir, ""), "[ldap]\nlisten = \"\"\n",
				fmt.Sprintf("[ldap]\nlisten = %q\nbase_dn = \"dc=example,dc=test\"\nmax_message_bytes = %d\n", ldapAddr, tc.bytes), 1)
			path := writeConfig(t, dir, text)
			line := 1 + strings.Count(text[:strings.Index(text, "max_message_bytes")], "\n")
			out, err := runBinary("check-config", "-no-bind-check", "-config", path)
			if tc.ok {
				if err != nil {
					t.Fatalf("check-config refused %d bytes: %v\n%s", tc.bytes, err, out)
				}
				p := startDaemon(t, dir, path)
				p.stop()
				return
			}
			want := fmt.Sprintf("%s:%d: ldap.max_message_bytes: must be between 1024 and 16777216", path, line)
			if err == nil || !strings.Contains(out, want) {
				t.Fatalf("check-config: %v\n%s\nwant %q", err, out, want)
			}
			out, err = runBinary("serve", "-config", path)
			if err == nil || !strings.Contains(out, want) {
				t.Fatalf("serve: %v\n%s\nwant %q", err, out, want)
			}
		})
	}
}

// TestCLINeedsOnlyTheAdminBlock: the CLI works while a RADIUS secret's
// environment variable is unset; serve does not start without it.
func TestCLINeedsOnlyTheAdminBlock(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("GW_TEST_RADIUS_SECRET", "s3cret-s3cret-s3cret")
	text := strings.Replace(testConfig(t, dir, ""), "[radius]\nlisten = []\n",
		fmt.Sprintf("[radius]\nlisten = [\"127.0.0.1:%d\"]\n[[radius.client]]\nname = \"nas\"\nnetworks = [\"127.0.0.0/8\"]\nsecret = \"env:GW_TEST_RADIUS_SECRET\"\n",
			testutil.FreeUDPPort(t)), 1)
	path := writeConfig(t, dir, text)
	p := startDaemon(t, dir, path)
	if err := os.Unsetenv("GW_TEST_RADIUS_SECRET"); err != nil {
		t.Fatal(err)
	}
	if out, err := p.cli("", "user", "create", "-username", "carol", "-email", "carol@example.test"); err != nil {
		t.Fatalf("user create: %v\n%s", err, out)
	}
	out, err := p.cli("", "user", "list")
	if err != nil || !strings.Contains(out, "carol") {
		t.Fatalf("user list with RADIUS_SECRET unset: %v\n%s", err, out)
	}
	p.stop()
	out, err = runBinary("serve", "-config", path)
	if err == nil || !strings.Contains(out, "radius.client[0].secret: environment variable GW_TEST_RADIUS_SECRET") {
		t.Fatalf("serve must refuse an unset secret, naming the key: %v\n%s", err, out)
	}
}

// TestRemovedDirectoryIsNotForgottenSilently: SPEC 4.5 by intent. A
// bound directory whose block is gone stops the start; `directory
// forget` (offline here) drops its bindings, and then the daemon starts.
// Forgetting on a running daemon disables no remote account.
func TestRemovedDirectoryIsNotForgottenSilently(t *testing.T) {
	fg := fakegraph.New()
	defer fg.Close()
	dir := t.TempDir()
	text, _, _ := takeoverConfig(t, dir, fg)
	path := writeConfig(t, dir, text)
	p := startDaemon(t, dir, path)
	for _, u := range []string{"alice", "bob"} {
		if _, err := p.api("POST", "/v1/users", map[string]any{"username": u, "email": u + "@example.test"}, nil); err != nil {
			t.Fatal(err)
		}
		if out, err := p.cli("", "bind", "m365", "-user", u); err != nil {
			t.Fatalf("bind: %v\n%s", err, out)
		}
	}
	testutil.Eventually(t, 10*time.Second, func() bool {
		_, a := fg.User("alice@example.test")
		_, b := fg.User("bob@example.test")
		return a && b
	}, "both accounts provisioned")

	// Online: the running daemon forgets the directory without
	// disabling anyone.
	out, err := p.cli("", "directory", "forget", "m365")
	if err != nil || !strings.Contains(out, "forgot directory m365: 2 bindings") {
		t.Fatalf("directory forget on the running daemon: %v\n%s", err, out)
	}
	var sync struct {
		Directories []any `json:"directories"`
	}
	if _, err := p.api("GET", "/v1/users/alice/sync", nil, &sync); err != nil || len(sync.Directories) != 0 {
		t.Fatalf("alice still has sync state after forget: %v %+v", err, sync)
	}
	if u, _ := fg.User("alice@example.test"); !u.AccountEnabled {
		t.Fatal("forgetting a directory must leave its accounts as they are (SPEC 4.5)")
	}
	p.stop()

	// Bind again, then remove the block: the start is refused.
	p = startDaemon(t, dir, path)
	if out, err := p.cli("", "bind", "m365", "-user", "alice"); err != nil {
		t.Fatalf("bind after restart: %v\n%s", err, out)
	}
	p.stop()
	without := text[:strings.Index(text, "[[directory]]")]
	writeConfig(t, dir, without)
	out, err = runBinary("serve", "-config", path)
	var ee *exec.ExitError
	if !errorsAs(err, &ee) || !strings.Contains(out, `"m365" (1 bindings`) || !strings.Contains(out, "gatewayd directory forget NAME -config "+path) {
		t.Fatalf("serve must refuse to drop m365's bindings silently: %v\n%s", err, out)
	}
	out, err = runBinary("directory", "forget", "m365", "-config", path)
	if err != nil || !strings.Contains(out, "forgot directory m365: 1 bindings") {
		t.Fatalf("directory forget on a stopped daemon: %v\n%s", err, out)
	}
	p = startDaemon(t, dir, path)
	var dirs struct {
		Directories []any `json:"directories"`
	}
	if _, err := p.api("GET", "/v1/directories", nil, &dirs); err != nil || len(dirs.Directories) != 0 {
		t.Fatalf("directories after forget: %v %+v", err, dirs)
	}
	var evs struct {
		Events []struct{ Type, Directory string } `json:"events"`
	}
	if _, err := p.api("GET", "/v1/events?type=directory_forget", nil, &evs); err != nil || len(evs.Events) != 2 {
		t.Fatalf("want two directory_forget events: %v %+v", err, evs)
	}
}
