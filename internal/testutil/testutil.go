// Package testutil holds helpers shared by the test suites.
package testutil

import (
	"net"
	"os"
	"os/exec"
	"testing"
	"time"
)

// InCI reports whether the suite runs under CI, where a missing peer is a
// failure rather than a skip (CI installs every peer via scripts/test-deps.sh).
func InCI() bool { return os.Getenv("CI") != "" }

// RequireBinary returns the path of a real client (ldapsearch, radclient...).
// Outside CI a missing binary skips with the install hint; in CI it fails.
func RequireBinary(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if _, err := os.Stat(dir + "/" + name); err == nil {
			return dir + "/" + name
		}
	}
	Unavailable(t, name+" not found: run scripts/test-deps.sh (installs the Debian packages the suite needs)")
	return ""
}

// Unavailable ends a test whose peer, tool or privilege is missing: a
// skip outside CI, a failure in CI, where scripts/test-deps.sh and root
// must have provided it (a silent skip there would hide a missing peer).
func Unavailable(t testing.TB, msg string) {
	t.Helper()
	if InCI() {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// RequireRoot calls Unavailable unless the test runs as root; why says
// what needs it (namespaces, mounts, a daemon that drops privileges).
func RequireRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		Unavailable(t, why+" needs root")
	}
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// FreeUDPPort returns a loopback UDP port that was free a moment ago.
func FreeUDPPort(t testing.TB) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// Eventually polls cond every 10 ms until it holds or the deadline passes.
func Eventually(t testing.TB, within time.Duration, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not true within %v: %s", within, msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
