package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A root and blocks shaped like the daemon's, owned by this test.
type testRoot struct {
	Name  string           `toml:"name"`
	Door  doorBlock        `toml:"door"`
	Items []itemBlock      `toml:"item"`
	Dirs  []DirectoryBlock `toml:"directory"`
}

func (r *testRoot) Defaults() { r.Name = "gw" }

func (r *testRoot) Validate() error {
	if r.Name == "cross" {
		return Errorf("door.port", "name %q conflicts with the door", r.Name)
	}
	return nil
}

type doorBlock struct {
	Port    int           `toml:"port"`
	Open    bool          `toml:"open"`
	Timeout time.Duration `toml:"timeout"`
	Key     Secret        `toml:"key"`
	Clients []itemBlock   `toml:"client"`
}

func (d *doorBlock) Defaults() { *d = doorBlock{Port: 389, Open: true, Timeout: time.Minute} }

func (d *doorBlock) Validate() error {
	var errs []error
	if d.Port < 1 || d.Port > 65535 {
		errs = append(errs, Errorf("port", "must be 1-65535, got %d", d.Port))
	}
	if d.Timeout <= 0 {
		errs = append(errs, Errorf("timeout", "must be positive"))
	}
	return errors.Join(errs...)
}

type itemBlock struct {
	Label   string `toml:"label"`
	Enabled bool   `toml:"enabled"`
}

func (i *itemBlock) Defaults() { *i = itemBlock{Enabled: true} }

func (i *itemBlock) Validate() error {
	if i.Label == "" {
		return Errorf("label", "is required")
	}
	return nil
}

type fakeDir struct {
	Type   string `toml:"type"`
	Tenant string `toml:"tenant"`
	Limit  int    `toml:"limit"`
}

func (f *fakeDir) Defaults() { *f = fakeDir{Type: "fake", Limit: 7} }
func (f *fakeDir) Validate() error {
	if f.Tenant == "" {
		return Errorf("tenant", "is required for type fake")
	}
	return nil
}

func init() {
	RegisterDirectoryType("fake", func() DirectoryBlock { return new(fakeDir) })
}

func parseTest(t *testing.T, text string, opts Options) (*testRoot, error) {
	t.Helper()
	r := &testRoot{}
	_, err := Parse("test.toml", []byte(text), r, opts)
	return r, err
}

func TestDefaultsThenFile(t *testing.T) {
	r, err := parseTest(t, `
[door]
open = false
[[door.client]]
label = "a"
[[door.client]]
label = "b"
enabled = false
[[item]]
label = "x"
[[directory]]
type = "fake"
tenant = "t1"
`, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Name != "gw" || r.Door.Port != 389 || r.Door.Timeout != time.Minute {
		t.Errorf("defaults not kept for keys the file leaves out: %+v", r)
	}
	if r.Door.Open {
		t.Error("a false in the file must win over a true default")
	}
	if len(r.Door.Clients) != 2 || !r.Door.Clients[0].Enabled || r.Door.Clients[1].Enabled {
		t.Errorf("array elements must start from their Defaults: %+v", r.Door.Clients)
	}
	if len(r.Items) != 1 || !r.Items[0].Enabled {
		t.Errorf("top-level array elements: %+v", r.Items)
	}
	if len(r.Dirs) != 1 {
		t.Fatalf("directories: %+v", r.Dirs)
	}
	if d := r.Dirs[0].(*fakeDir); d.Tenant != "t1" || d.Limit != 7 {
		t.Errorf("directory block by type, with its defaults: %+v", d)
	}
}

func TestProblemsAtTheirKeys(t *testing.T) {
	t.Setenv("GW_CONFIG_TEST", "s3cret")
	tests := []struct {
		name string
		text string
		line int
		want string
	}{
		{"unknown top key", "name = \"x\"\nbogus = 1\n", 2, `unknown key "bogus"`},
		{"unknown nested key", "[door]\nport = 1\nprot = 2\n", 3, `unknown key "door.prot"`},
		{"unknown key in array", "[[door.client]]\nlabel = \"a\"\nlable = \"b\"\n", 3, `unknown key "door.client.lable"`},
		{"block error at its key", "[door]\nopen = true\nport = 70000\n", 3, "door.port: must be 1-65535"},
		{"defaulted key reported at its table", "[door]\ntimeout = \"0s\"\n", 2, "door.timeout: must be positive"},
		{"second element", "[[item]]\nlabel = \"a\"\n\n[[item]]\nenabled = true\n", 4, "item[1].label: is required"},
		{"nested element", "[door]\nport = 1\n[[door.client]]\nlabel = \"a\"\n[[door.client]]\nenabled = false\n", 5, "door.client[1].label: is required"},
		{"type error", "[door]\nport = \"x\"\n", 2, "door"},
		{"bad duration", "[door]\ntimeout = \"soon\"\n", 2, "invalid duration"},
		{"unset env secret", "[door]\nkey = \"env:GW_CONFIG_TEST_UNSET\"\n", 2, "door.key: environment variable GW_CONFIG_TEST_UNSET"},
		{"literal secret", "[door]\nkey = \"hunter2\"\n", 2, "must be references"},
		{"missing secret file", "[door]\nkey = \"file:/nonexistent/x\"\n", 2, "cannot read secret file"},
		{"unknown directory type", "[[directory]]\ntype = \"okta\"\nwhatever = 1\n", 2, `type "okta" is not supported (supported: fake)`},
		{"directory without type", "[[directory]]\ntenant = \"t\"\n", 1, "needs a type"},
		{"directory block error", "[[directory]]\ntype = \"fake\"\n", 1, "directory[0].tenant: is required"},
		{"unknown directory key", "[[directory]]\ntype = \"fake\"\ntenant = \"t\"\ntennant = \"t\"\n", 4, `unknown key "directory.tennant"`},
		{"root validate", "name = \"cross\"\n[door]\nport = 5\n", 3, "door.port: name \"cross\""},
		{"syntax", "[door\nport = 1\n", 2, "table name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseTest(t, tc.text, Options{})
			var ps Problems
			if !errors.As(err, &ps) || len(ps) == 0 {
				t.Fatalf("want Problems, got %v", err)
			}
			if len(ps) != 1 {
				t.Errorf("want exactly one problem, got:\n%v", ps)
			}
			got := ps[0]
			if got.Line != tc.line || !strings.Contains(got.String(), tc.want) || !strings.HasPrefix(got.String(), "test.toml:") {
				t.Fatalf("got %q (line %d), want line %d containing %q", got, got.Line, tc.line, tc.want)
			}
		})
	}
}

func TestEveryProblemAtOnce(t *testing.T) {
	_, err := parseTest(t, "[door]\nport = 0\ntimeout = \"0s\"\n[[item]]\n[[item]]\n", Options{})
	var ps Problems
	if !errors.As(err, &ps) || len(ps) != 4 {
		t.Fatalf("want four problems, got %v", err)
	}
	for i := 1; i < len(ps); i++ {
		if ps[i].Line < ps[i-1].Line {
			t.Fatalf("problems out of file order: %v", ps)
		}
	}
}

func TestSecrets(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "s")
	if err := os.WriteFile(f, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GW_CONFIG_TEST", "from-env")
	for _, tc := range []struct{ ref, want string }{{"file:" + f, "from-file"}, {"env:GW_CONFIG_TEST", "from-env"}} {
		r, err := parseTest(t, "[door]\nkey = \""+tc.ref+"\"\n", Options{})
		if err != nil {
			t.Fatal(err)
		}
		if got := string(r.Door.Key.Value.Bytes()); got != tc.want || r.Door.Key.String() != tc.ref {
			t.Errorf("%s resolved to %q (shown as %q)", tc.ref, got, r.Door.Key)
		}
	}
}

func TestOnlyResolvesAndChecksWhatIsAsked(t *testing.T) {
	text := "name = \"cross\"\n[door]\nport = 0\nkey = \"env:GW_CONFIG_TEST_UNSET\"\n[[item]]\n"
	if _, err := parseTest(t, text, Options{}); err == nil {
		t.Fatal("the whole file must be refused")
	}
	r, err := parseTest(t, text, Options{Only: []string{"name"}})
	if err != nil {
		t.Fatalf("with Only, other blocks are neither resolved nor checked: %v", err)
	}
	if r.Door.Key.Ref == "" || !r.Door.Key.Value.IsEmpty() {
		t.Fatal("the reference is kept, unresolved")
	}
	if _, err := parseTest(t, text+"bogus = 1\n", Options{Only: []string{"name"}}); err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Fatalf("unknown keys are still refused with Only: %v", err)
	}
}

func TestPrefix(t *testing.T) {
	err := Prefix("radius", errors.Join(Errorf("client[1].networks", "bad"), Errorf("[2]", "x"), errors.New("plain")))
	var keys []string
	for _, e := range flatten(err) {
		var fe *FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("not a FieldError: %v", e)
		}
		keys = append(keys, fe.Key)
	}
	if strings.Join(keys, " ") != "radius.client[1].networks radius[2] radius" {
		t.Fatalf("keys: %v", keys)
	}
}

func TestLocate(t *testing.T) {
	p := locate("a = 1 # c\n[t]\nb = \"x # not a comment\"\n[[arr]]\nk = 1\n[[arr]]\nk = 2\n[arr.sub]\nz = 3\n")
	for path, want := range map[string]int{"a": 1, "t.b": 3, "arr[0].k": 5, "arr[1].k": 7, "arr.k": 5, "arr[1].sub.z": 9} {
		if got := p[path]; got != want {
			t.Errorf("%s: line %d, want %d", path, got, want)
		}
	}
}

func TestCheckListen(t *testing.T) {
	for addr, ok := range map[string]bool{"127.0.0.1:389": true, "[::1]:1812": true, ":8480": true, "localhost:1": true,
		"8480": false, "example.com:389": false, "127.0.0.1:http2x": false} {
		if err := CheckListen(addr); (err == nil) != ok {
			t.Errorf("%s: %v", addr, err)
		}
	}
}
