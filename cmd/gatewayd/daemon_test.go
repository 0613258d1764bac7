package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/testutil"
)

// binary is the gatewayd built once for the whole package's tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gatewayd-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "gatewayd")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building gatewayd: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a gatewayd child process.
type proc struct {
	t       *testing.T
	cmd     *exec.Cmd
	dir     string
	cfgPath string
	admin   string
	token   string
	logMu   sync.Mutex
	log     bytes.Buffer
	done    chan struct{}
	exitErr error
}

// testConfig is a config with cheap hashing and loopback ports; extra is
// appended (more sections).
func testConfig(t *testing.T, dir string, extra string) string {
	t.Helper()
	adminPort := testutil.FreePort(t)
	return fmt.Sprintf(`data_dir = %q
[log]
level = "debug"
[admin]
listen = "127.0.0.1:%d"
[authn]
credential_cache_ttl = "15m"
[authn.argon2]
time = 1
memory_kib = 64
threads = 1
[ldap]
listen = ""
[radius]
listen = []
%s`, filepath.Join(dir, "data"), adminPort, extra)
}

func writeConfig(t *testing.T, dir, text string) string {
	t.Helper()
	p := filepath.Join(dir, "gatewayd.toml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *proc) Write(b []byte) (int, error) {
	p.logMu.Lock()
	defer p.logMu.Unlock()
	return p.log.Write(b)
}

func (p *proc) logs() string {
	p.logMu.Lock()
	defer p.logMu.Unlock()
	return p.log.String()
}

// startDaemon runs gatewayd serve on cfgPath and waits for /healthz.
func startDaemon(t *testing.T, dir, cfgPath string) *proc {
	t.Helper()
	p := &proc{t: t, dir: dir, cfgPath: cfgPath, done: make(chan struct{})}
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	p.admin = "http://" + cfg.Admin.Listen
	p.cmd = exec.Command(binary, "serve", "-config", cfgPath)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exitErr = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("gatewayd log:\n%s", p.logs())
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-p.done:
			t.Fatalf("gatewayd exited during start: %v\n%s", p.exitErr, p.logs())
		default:
		}
		resp, err := http.Get(p.admin + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gatewayd not healthy within 15s:\n%s", p.logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
	tok, err := os.ReadFile(cfg.TokenFile())
	if err != nil {
		t.Fatal(err)
	}
	p.token = strings.TrimSpace(string(tok))
	return p
}

func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Kill()
	<-p.done
}

// stop sends SIGTERM and waits; it fails the test past 10 s.
func (p *proc) stop() time.Duration {
	start := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(12 * time.Second):
		p.t.Fatalf("gatewayd did not exit within 10 s of SIGTERM\n%s", p.logs())
	}
	return time.Since(start)
}

// api calls the admin API; out may be nil.
func (p *proc) api(method, path string, body any, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, p.admin+path, rd)
	req.Header.Set("Authorization", "Bearer "+p.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, err
		}
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, data)
	}
	return resp.StatusCode, nil
}

// cli runs a gatewayd CLI command against the daemon.
func (p *proc) cli(stdin string, args ...string) (string, error) {
	args = append(args, "-config", p.cfgPath)
	cmd := exec.Command(binary, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
