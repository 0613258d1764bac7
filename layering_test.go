package gatewayd

import (
	"os/exec"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/gatewayd/gatewayd"

// layerRule forbids a set of packages from importing others. Data flows
// one way: front door → authn → (store, delegation) → event → sync →
// connector, and a fake never imports the code it fakes.
type layerRule struct {
	// from and to are package paths below the module ("sync/entra");
	// "x/..." matches x and every package under it.
	from, to []string
	// direct: only the package's own imports count. Otherwise every
	// package it reaches does (a door that imports sync through another
	// package still knows the directories).
	direct bool
	why    string
}

var doors = []string{"ldapserver/...", "radiusserver/...", "portal/..."}

var layerRules = []layerRule{
	{from: doors, to: []string{"sync/...", "delegation/...", "admin/..."},
		why: "front doors know nothing of directories; they call authn"},
	{from: []string{"sync/entra", "sync/google", "sync/ad"}, to: append([]string{"authn", "delegation", "admin"}, doors...),
		why: "connectors know nothing of LDAP, RADIUS or logins"},
	{from: []string{"sync/entra", "sync/google", "sync/ad"}, to: []string{"store"}, direct: true,
		why: "connectors speak the sync engine's contract, not the store's types"},
	{from: []string{"store/..."}, to: append([]string{"authn", "delegation", "admin", "sync/...", "cmd/..."}, doors...),
		why: "the store is the bottom layer"},
	{from: []string{"delegation"}, to: []string{"store"}, direct: true,
		why: "delegation validates a Principal that authn hands it; it reads no stored user"},
	{from: []string{"authn"}, to: append([]string{"sync/...", "delegation", "admin"}, doors...),
		why: "authn is called by the doors and calls out only through interfaces it defines"},
	{from: []string{"config", "secret"}, to: []string{"..."},
		why: "config and secret are leaves every block may import (secret excepted for config)"},
	{from: []string{"internal/fakegraph"}, to: []string{"sync/..."}, why: "a fake never imports the code it fakes"},
	{from: []string{"internal/fakegoogle"}, to: []string{"sync/..."}, why: "a fake never imports the code it fakes"},
	{from: []string{"admin"}, to: append([]string{"sync/entra", "sync/google", "sync/ad", "delegation"}, doors...),
		why: "admin reaches directories only through the import contract in sync (sync.ImportUser), never a connector"},
}

// allowed edges that a broad rule would otherwise forbid.
var layerAllowed = map[string]bool{
	"config -> secret": true, // SecretRef resolves into secret.String
}

func TestLayering(t *testing.T) {
	graph := listImports(t)
	if len(graph) < 10 {
		t.Fatalf("go list found only %d packages", len(graph))
	}
	for _, v := range violations(graph) {
		t.Error("forbidden import:", v)
	}
}

// violations lists every edge of graph a rule forbids, with the rule's why.
func violations(graph map[string][]string) []string {
	var bad []string
	for _, r := range layerRules {
		for pkg := range graph {
			if !matchAny(pkg, r.from) {
				continue
			}
			reach := graph[pkg]
			if !r.direct {
				reach = closure(graph, pkg)
			}
			for _, dep := range reach {
				edge := pkg + " -> " + dep
				if dep == pkg || layerAllowed[edge] || !matchAny(dep, r.to) {
					continue
				}
				bad = append(bad, edge+" ("+r.why+")")
			}
		}
	}
	sort.Strings(bad)
	return bad
}

// listImports maps each package below the module to the module packages
// it imports (test files excluded: tests may drive a package with real
// neighbours).
func listImports(t *testing.T) map[string][]string {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	graph := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg, ok := rel(fields[0])
		if !ok {
			continue
		}
		graph[pkg] = nil
		for _, imp := range fields[1:] {
			if dep, ok := rel(imp); ok {
				graph[pkg] = append(graph[pkg], dep)
			}
		}
	}
	return graph
}

func rel(importPath string) (string, bool) {
	if importPath == module {
		return ".", true
	}
	return strings.CutPrefix(importPath, module+"/")
}

func closure(graph map[string][]string, pkg string) []string {
	seen := map[string]bool{}
	var walk func(string)
	walk = func(p string) {
		for _, d := range graph[p] {
			if !seen[d] {
				seen[d] = true
				walk(d)
			}
		}
	}
	walk(pkg)
	out := make([]string, 0, len(seen))
	for d := range seen {
		out = append(out, d)
	}
	return out
}

func matchAny(pkg string, patterns []string) bool {
	for _, p := range patterns {
		switch {
		case p == "...":
			return true
		case strings.HasSuffix(p, "/..."):
			base := strings.TrimSuffix(p, "/...")
			if pkg == base || strings.HasPrefix(pkg, base+"/") {
				return true
			}
		case pkg == p:
			return true
		}
	}
	return false
}

// TestLayeringCatchesAnEdge proves the rules bite: a door that reaches a
// connector through authn, and a store that imports authn, are reported.
func TestLayeringCatchesAnEdge(t *testing.T) {
	graph := map[string][]string{
		"ldapserver": {"authn"},
		"authn":      {"store", "sync/entra"},
		"store":      {"authn"},
	}
	got := strings.Join(violations(graph), "\n")
	for _, want := range []string{"ldapserver -> sync/entra (", "authn -> sync/entra (", "store -> authn ("} {
		if !strings.Contains(got, want) {
			t.Errorf("rules missed %q; reported:\n%s", want, got)
		}
	}
}
