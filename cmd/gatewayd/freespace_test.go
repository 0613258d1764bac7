package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/testutil"
)

// healthzStore is /healthz's HTTP status and its store check.
func healthzStore(admin string) (int, string, string, error) {
	resp, err := http.Get(admin + "/healthz")
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	var rep struct {
		Checks map[string]struct {
			Status  string `json:"status"`
			Message string `json:"message"`
		} `json:"checks"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		return resp.StatusCode, "", "", err
	}
	c := rep.Checks["store"]
	return resp.StatusCode, c.Status, c.Message, nil
}

// TestHealthzFreeSpaceFloor (issue 14, C8): the daemon's data_dir is a
// 48 MiB tmpfs in a private mount namespace, with [store] min_free_space
// = "24MiB". Filling the tmpfs to below the floor makes /healthz report
// the store down (503) saying what is free and what the floor is; freeing
// it brings the check back.
func TestHealthzFreeSpaceFloor(t *testing.T) {
	testutil.RequireRoot(t, "a tmpfs data_dir in a private mount namespace")
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	cfgPath := writeConfig(t, dir, testConfig(t, dir, "[store]\nmin_free_space = \"24MiB\"\n"))
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	admin := "http://" + cfg.Admin.Listen
	d := startInNamespace(t, "gatewayd", nil,
		"mount -t tmpfs -o size=48m,mode=0700 gatewayd-data "+shellQuote(data),
		binary, "serve", "-config", cfgPath)
	// The daemon execs in place of the namespace's shell: its root shows
	// the tmpfs (the host's view of data stays an empty directory).
	inNS := filepath.Join(fmt.Sprintf("/proc/%d/root", d.cmd.Process.Pid), data)

	waitStore := func(what string, ok func(code int, status, msg string) bool) (int, string, string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			code, status, msg, err := healthzStore(admin)
			if err == nil && ok(code, status, msg) {
				return code, status, msg
			}
			select {
			case <-d.done:
				t.Fatalf("gatewayd exited: %v\n%s", d.err, d.out.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: /healthz stays at %d %q %q (%v)", what, code, status, msg, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitStore("start", func(code int, status, _ string) bool { return code == http.StatusOK && status == "ok" })
	if _, err := os.Stat(filepath.Join(inNS, "gatewayd.db")); err != nil {
		t.Fatalf("the journal is not on the tmpfs: %v", err)
	}

	filler := filepath.Join(inNS, "filler")
	if err := os.WriteFile(filler, make([]byte, 32<<20), 0o600); err != nil {
		t.Fatalf("filling the tmpfs: %v", err)
	}
	code, _, msg := waitStore("filled", func(_ int, status, _ string) bool { return status == "down" })
	t.Logf("filled: %d %s", code, msg)
	if code != http.StatusServiceUnavailable {
		t.Errorf("/healthz answered %d with the store down, want 503", code)
	}
	for _, want := range []string{data, "MiB free", "below the floor of 24.0 MiB", "min_free_space"} {
		if !strings.Contains(msg, want) {
			t.Errorf("store check message %q does not mention %q", msg, want)
		}
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitStore("freed", func(code int, status, _ string) bool { return code == http.StatusOK && status == "ok" })
}
