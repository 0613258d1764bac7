package testutil

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresBinDir holds Debian 12's PostgreSQL 15 server binaries
// (postgresql-15, installed by scripts/test-deps.sh).
const PostgresBinDir = "/usr/lib/postgresql/15/bin"

// PostgresUser is the system user the test servers run as when the tests
// run as root (initdb and postgres refuse root); scripts/test-deps.sh
// creates it. Run as another user, the servers run as that user.
const PostgresUser = "gatewayd-pgtest"

// The settings every test server shares; the port and socket directory
// are per server. Trust from loopback only: nothing beyond the host can
// reach a test server. fsync stays on because the store's tests check that
// acknowledged writes survive.
const (
	postgresHBA = "# internal/testutil: a throwaway test server, trusted from this host only\n" +
		"local all all              trust\n" +
		"host  all all 127.0.0.1/32 trust\n"
	postgresConf = "\n# internal/testutil\n" +
		"listen_addresses = '127.0.0.1'\n" +
		"fsync = on\n" +
		"shared_buffers = 16MB\n" +
		"max_connections = 100\n"
)

// How long a server may take to accept connections or to shut down. Only
// a server that is broken comes near these; a loaded machine does not.
const (
	postgresStartWithin = 2 * time.Minute
	postgresStopWithin  = 2 * time.Minute
)

// Postgres is a PostgreSQL server of the caller's own, on 127.0.0.1, with
// a database created for the caller. Each StartPostgres gives a separate
// server (its own data directory and port), so a test that stops one to
// simulate an outage disturbs no other test.
type Postgres struct {
	root string // 0711 instance directory, holds data/ and postgres.log
	data string
	log  string
	port int
	cred *syscall.Credential // nil: run as the current user
	db   string

	mu  sync.Mutex
	run *postgresRun // nil while stopped
	ndb int
}

// StartPostgres starts a PostgreSQL 15 server on a free loopback port and
// creates a fresh database in it (see DSN); t.Cleanup stops the server and
// removes its files. Missing binaries or a missing PostgresUser call
// Unavailable (a failure in CI).
//
// Each call runs its own server rather than sharing one per test binary:
// tests stop and start the server to simulate an outage, which must not
// hit tests running in parallel. What a shared server would have saved,
// initdb (0.6-2 s of CPU), is paid once per machine instead: the data
// directory initdb makes is kept as a template under the user's cache
// directory, keyed by the server version and the settings above, and each
// server starts from a copy of it (about 40 MB, well under 0.1 s).
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	for _, b := range []string{"initdb", "postgres"} {
		if _, err := os.Stat(filepath.Join(PostgresBinDir, b)); err != nil {
			Unavailable(t, filepath.Join(PostgresBinDir, b)+" not found: run scripts/test-deps.sh (installs postgresql-15)")
		}
	}
	cred := postgresCredential(t)
	template, err := postgresTemplate(cred)
	if err != nil {
		t.Fatalf("postgres: %v", err)
	}

	// Not t.TempDir: its parents are 0700 root, and its path (with the
	// test's name in it) can exceed the 107 bytes of a unix socket path.
	root, err := os.MkdirTemp("", "gatewayd-pg-")
	if err != nil {
		t.Fatal(err)
	}
	p := &Postgres{root: root, data: filepath.Join(root, "data"), log: filepath.Join(root, "postgres.log"), cred: cred}
	t.Cleanup(func() {
		p.stop(t)
		if err := os.RemoveAll(root); err != nil {
			t.Errorf("postgres: removing %s: %v", root, err)
		}
	})
	if err := postgresReachable(root, cred); err != nil {
		t.Fatalf("postgres: %v", err)
	}
	if err := copyTree(template, p.data, cred); err != nil {
		t.Fatalf("postgres: copying the template data directory: %v", err)
	}

	// FreePort's port may be taken before the server binds it: try another.
	for attempt := 1; ; attempt++ {
		p.port = FreePort(t)
		conf := fmt.Sprintf("\nport = %d\nunix_socket_directories = '%s'\n", p.port, p.data)
		if err := appendFile(filepath.Join(p.data, "postgresql.conf"), conf); err != nil {
			t.Fatal(err)
		}
		err := p.start()
		if err == nil {
			break
		}
		if !errors.Is(err, errPortTaken) || attempt == 5 {
			t.Fatalf("postgres: %v", err)
		}
	}

	p.db = "gatewayd_test"
	p.createDatabase(t, p.db)
	return p
}

// DSN is the URL of the database StartPostgres created for the caller, as
// superuser postgres: postgres://postgres@127.0.0.1:PORT/gatewayd_test?sslmode=disable.
func (p *Postgres) DSN() string { return p.dsn(p.db) }

// NewDatabase creates another empty database on the same server and
// returns its URL, for a test that needs two stores side by side.
func (p *Postgres) NewDatabase(t testing.TB) string {
	t.Helper()
	p.mu.Lock()
	p.ndb++
	name := fmt.Sprintf("gatewayd_test_%d", p.ndb)
	p.mu.Unlock()
	p.createDatabase(t, name)
	return p.dsn(name)
}

// Stop shuts the server down (fast mode: open sessions are ended, as in a
// database outage) and waits for it to exit. Data stays for Start.
func (p *Postgres) Stop(t testing.TB) {
	t.Helper()
	p.mu.Lock()
	running := p.run != nil
	p.mu.Unlock()
	if !running {
		t.Fatal("postgres: Stop: the server is not running")
	}
	p.stop(t)
}

// Start starts the server again on the same data directory and port, and
// returns once it accepts connections.
func (p *Postgres) Start(t testing.TB) {
	t.Helper()
	if err := p.start(); err != nil {
		t.Fatalf("postgres: %v", err)
	}
}

func (p *Postgres) dsn(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.port, db)
}

func (p *Postgres) createDatabase(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), postgresStartWithin)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.dsn("postgres"))
	if err != nil {
		t.Fatalf("postgres: connecting to create database %s: %v", name, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("postgres: CREATE DATABASE %s: %v", name, err)
	}
}

var errPortTaken = errors.New("port taken")

// postgresRun is one life of the postmaster process.
type postgresRun struct {
	proc   *os.Process
	exited chan struct{} // closed once proc has exited and err is set
	err    error         // from Wait
}

// start runs postgres as a child (rather than daemonised by pg_ctl), so
// that its exit is seen at once and it gets a parent-death signal: a test
// binary that is killed leaves no server behind.
func (p *Postgres) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.run != nil {
		return errors.New("Start: the server is already running")
	}
	logf, err := os.OpenFile(p.log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	logStart, err := logf.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(PostgresBinDir, "postgres"), "-D", p.data)
	cmd.Env = postgresEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	// SIGQUIT is PostgreSQL's immediate shutdown: the postmaster takes its
	// backends down with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred, Pdeathsig: syscall.SIGQUIT}

	// Pdeathsig fires when the thread that forked exits, not the process:
	// fork from a locked thread that lives as long as the child does.
	run := &postgresRun{exited: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		run.proc = cmd.Process
		started <- nil
		run.err = cmd.Wait()
		close(run.exited)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("starting %s: %w", cmd.Path, err)
	}

	// Poll with pgx until it answers; a postmaster that exits ends the wait.
	deadline := time.Now().Add(postgresStartWithin)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, p.dsn("postgres"))
		if err == nil {
			err = conn.Ping(ctx)
			conn.Close(ctx)
		}
		cancel()
		if err == nil {
			p.run = run
			return nil
		}
		if time.Now().After(deadline) {
			run.kill()
			return fmt.Errorf("server on port %d not ready within %v (last error: %v); log:\n%s", p.port, postgresStartWithin, err, p.logSince(logStart))
		}
		select {
		case <-run.exited:
			out := p.logSince(logStart)
			if strings.Contains(out, "could not bind IPv4 address") || strings.Contains(out, "Address already in use") {
				return fmt.Errorf("%w: %d; log:\n%s", errPortTaken, p.port, out)
			}
			return fmt.Errorf("server exited (%v) before accepting connections; log:\n%s", run.err, out)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stop is Stop without the check, for t.Cleanup (a server already
// stopped by the test is fine there).
func (p *Postgres) stop(t testing.TB) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	run := p.run
	if run == nil {
		return
	}
	p.run = nil
	// SIGINT is fast shutdown: sessions are ended, a checkpoint is written.
	if err := run.proc.Signal(syscall.SIGINT); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("postgres: signalling the server: %v", err)
	}
	select {
	case <-run.exited:
	case <-time.After(postgresStopWithin):
		run.kill()
		t.Errorf("postgres: server did not shut down within %v; killed it. Log:\n%s", postgresStopWithin, p.logSince(0))
	}
}

// kill is the last resort for a server that will neither start nor stop.
func (r *postgresRun) kill() {
	_ = r.proc.Signal(syscall.SIGQUIT)
	<-r.exited
}

func (p *Postgres) logSince(off int64) string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	if off <= int64(len(b)) {
		b = b[off:]
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// postgresCredential is whom the servers run as: PostgresUser when the
// tests run as root, else the current user (nil).
func postgresCredential(t testing.TB) *syscall.Credential {
	t.Helper()
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup(PostgresUser)
	if err != nil {
		Unavailable(t, "user "+PostgresUser+" (runs the test PostgreSQL servers; initdb refuses root) not found: run scripts/test-deps.sh")
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		t.Fatalf("postgres: user %s has uid %q gid %q", PostgresUser, u.Uid, u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
}

// postgresEnv is the test binary's environment without PG* variables,
// which would otherwise redirect the server (PGDATA, PGPORT...).
func postgresEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	return append(env, "LC_ALL=C")
}

// postgresTemplates remembers the template found or made, so that the
// cache lookup (and initdb, when there is no cache) happens once per binary.
var postgresTemplates struct {
	sync.Mutex
	dir string
}

// postgresTemplate returns a data directory fresh from initdb with the
// shared settings, never started; made once per machine and user (see
// StartPostgres) and kept in postgresCacheDir.
func postgresTemplate(cred *syscall.Credential) (string, error) {
	postgresTemplates.Lock()
	defer postgresTemplates.Unlock()
	if postgresTemplates.dir != "" {
		return postgresTemplates.dir, nil
	}
	version, err := exec.Command(filepath.Join(PostgresBinDir, "postgres"), "--version").Output()
	if err != nil {
		return "", fmt.Errorf("postgres --version: %w", err)
	}
	sum := sha256.Sum256([]byte(string(version) + postgresHBA + postgresConf))
	name := "postgres-template-" + hex.EncodeToString(sum[:8])

	cache, err := postgresCacheDir()
	if err != nil {
		return "", err
	}
	final := filepath.Join(cache, name)
	if _, err := os.Stat(filepath.Join(final, "PG_VERSION")); err == nil {
		postgresTemplates.dir = final
		return final, nil
	}

	// initdb as the server user into a directory that user can reach (the
	// cache directory, under a 0700 home, may not be), then copy into the
	// cache and rename into place: a template is complete or absent, and
	// test binaries racing to make it each make their own and one wins.
	work, err := os.MkdirTemp("", "gatewayd-pginit-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	if err := os.Chmod(work, 0o711); err != nil {
		return "", err
	}
	if err := postgresReachable(work, cred); err != nil {
		return "", err
	}
	data := filepath.Join(work, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		return "", err
	}
	if cred != nil {
		if err := os.Chown(data, int(cred.Uid), int(cred.Gid)); err != nil {
			return "", err
		}
	}
	cmd := exec.Command(filepath.Join(PostgresBinDir, "initdb"), "-D", data, "-U", "postgres",
		"--auth=trust", "-E", "UTF8", "--locale=C", "--no-instructions")
	cmd.Env = postgresEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("initdb: %w\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(data, "pg_hba.conf"), []byte(postgresHBA), 0o600); err != nil {
		return "", err
	}
	if err := appendFile(filepath.Join(data, "postgresql.conf"), postgresConf); err != nil {
		return "", err
	}
	staging, err := os.MkdirTemp(cache, name+".tmp-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(staging)
	if err := copyTree(data, filepath.Join(staging, "data"), cred); err != nil {
		return "", err
	}
	if err := os.Rename(filepath.Join(staging, "data"), final); err != nil {
		if _, serr := os.Stat(filepath.Join(final, "PG_VERSION")); serr != nil {
			return "", fmt.Errorf("installing the template: %w", err)
		}
		// Another test binary installed it first; theirs is as good.
	}
	postgresTemplates.dir = final
	return final, nil
}

// postgresCacheDir is where templates are kept: the user's cache
// directory, or without one (no HOME) a directory of the user's own in
// the temp dir, checked so that another user cannot have planted it.
func postgresCacheDir() (string, error) {
	if dir, err := os.UserCacheDir(); err == nil {
		dir = filepath.Join(dir, "gatewayd-test")
		return dir, os.MkdirAll(dir, 0o700)
	}
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("gatewayd-test-cache-%d", os.Geteuid()))
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return "", err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || st.Uid != uint32(os.Geteuid()) || fi.Mode().Perm() != 0o700 {
		return "", fmt.Errorf("template cache %s is not a 0700 directory of this user: remove it", dir)
	}
	return dir, nil
}

// postgresReachable makes dir traversable by the server user and checks
// that every parent is too, so that a failure names the directory at
// fault rather than surfacing as a permission error inside initdb.
func postgresReachable(dir string, cred *syscall.Credential) error {
	if cred == nil {
		return nil
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		return err
	}
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		st, _ := fi.Sys().(*syscall.Stat_t)
		ok := fi.Mode().Perm()&0o001 != 0 ||
			st != nil && st.Uid == cred.Uid && fi.Mode().Perm()&0o100 != 0 ||
			st != nil && st.Gid == cred.Gid && fi.Mode().Perm()&0o010 != 0
		if !ok {
			return fmt.Errorf("user %s cannot traverse %s (mode %v): set TMPDIR to a directory whose parents all have o+x", PostgresUser, d, fi.Mode().Perm())
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// copyTree copies a data directory (regular files and directories, modes
// kept) and gives every copy to cred's user when cred is set.
func copyTree(src, dst string, cred *syscall.Credential) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if err := os.Mkdir(target, info.Mode().Perm()); err != nil {
				return err
			}
		case d.Type().IsRegular():
			if err := copyFile(path, target, info.Mode().Perm()); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: not a regular file or directory", path)
		}
		if cred != nil {
			return os.Lchown(target, int(cred.Uid), int(cred.Gid))
		}
		return nil
	})
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
