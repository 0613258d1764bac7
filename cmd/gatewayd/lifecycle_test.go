package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/testutil"
)

// runBinary runs gatewayd to completion (bounded) and returns its output.
func runBinary(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, args...).CombinedOutput()
	return string(out), err
}

func TestConfigErrorsExitWithFileAndLine(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	tests := []struct {
		name  string
		extra string
		admin string // replaces the admin listen address when set
		line  string // the "file:line:" expected
		msg   string
	}{
		{"unknown key", "[[radius.client]]\nname = \"a\"\nnetworks = [\"127.0.0.1/32\"]\nsecret = \"file:SECRET\"\ncolour = \"red\"\n", "", ":20:", `unknown key "radius.client.colour"`},
		{"bad cidr", "[[radius.client]]\nname = \"a\"\nnetworks = [\"127.0.0.1/40\"]\nsecret = \"file:SECRET\"\n", "", ":18:", "not a CIDR"},
		{"missing secret file", "[[radius.client]]\nname = \"a\"\nnetworks = [\"127.0.0.1/32\"]\nsecret = \"file:/nonexistent/radius.secret\"\n", "", ":19:", "cannot read secret file"},
		{"port in use", "", taken.Addr().String(), ":5:", "cannot listen"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := t.TempDir()
			secretPath := filepath.Join(d, "secret")
			os.WriteFile(secretPath, []byte("s3cret\n"), 0o600)
			text := testConfig(t, d, strings.ReplaceAll(tc.extra, "SECRET", secretPath))
			if tc.admin != "" {
				lines := strings.Split(text, "\n")
				lines[4] = `listen = "` + tc.admin + `"`
				text = strings.Join(lines, "\n")
			}
			cfgPath := writeConfig(t, d, text)
			for _, cmd := range []string{"check-config", "serve"} {
				out, err := runBinary(cmd, "-config", cfgPath)
				var ee *exec.ExitError
				if err == nil || !errorsAs(err, &ee) || ee.ExitCode() == 0 {
					t.Fatalf("%s exited 0 on a broken config:\n%s", cmd, out)
				}
				if !strings.Contains(out, cfgPath+tc.line) || !strings.Contains(out, tc.msg) {
					t.Fatalf("%s output should hold %q and %q:\n%s", cmd, cfgPath+tc.line, tc.msg, out)
				}
			}
		})
	}
	// And a good file passes.
	d := t.TempDir()
	cfgPath := writeConfig(t, d, testConfig(t, d, ""))
	if out, err := runBinary("check-config", "-config", cfgPath); err != nil || !strings.Contains(out, "ok") {
		t.Fatalf("check-config on a good file: %v\n%s", err, out)
	}
}

func errorsAs(err error, target **exec.ExitError) bool {
	ee, ok := err.(*exec.ExitError)
	if ok {
		*target = ee
	}
	return ok
}

func TestEmbeddedDefaultChecks(t *testing.T) {
	out, err := runBinary("check-config", "-no-bind-check")
	if err != nil || !strings.Contains(out, "embedded") {
		t.Fatalf("the embedded example must validate: %v\n%s", err, out)
	}
}

func TestSignals(t *testing.T) {
	dir := t.TempDir()
	text := testConfig(t, dir, "")
	cfgPath := writeConfig(t, dir, text)
	p := startDaemon(t, dir, cfgPath)

	// SIGHUP with a changed log level and a change that needs a restart.
	newText := strings.Replace(text, `level = "debug"`, `level = "warn"`, 1)
	newText = strings.Replace(newText, "[ldap]\nlisten = \"\"", "[ldap]\nlisten = \"127.0.0.1:1\"\nbase_dn = \"dc=x\"", 1)
	writeConfig(t, dir, newText)
	p.cmd.Process.Signal(syscall.SIGHUP)
	testutil.Eventually(t, 5*time.Second, func() bool {
		return strings.Contains(p.logs(), "needs a restart") && strings.Contains(p.logs(), "ldap.listen")
	}, "SIGHUP logs the change that needs a restart")

	// A broken config on SIGHUP keeps the running one.
	writeConfig(t, dir, text+"\nbogus = 1\n")
	p.cmd.Process.Signal(syscall.SIGHUP)
	testutil.Eventually(t, 5*time.Second, func() bool { return strings.Contains(p.logs(), "config not reloaded") }, "bad reload reported")
	if _, err := p.api("GET", "/v1/users", nil, nil); err != nil {
		t.Fatalf("daemon must keep serving after a bad reload: %v", err)
	}

	took := p.stop()
	if p.exitErr != nil {
		t.Fatalf("SIGTERM must end in a clean exit, got %v:\n%s", p.exitErr, p.logs())
	}
	t.Logf("SIGTERM to exit: %v", took)
}
