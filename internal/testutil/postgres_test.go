package testutil

import (
	"context"
	"errors"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func pgConnect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect %s: %v", dsn, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// A committed row survives a stop and start of the server (the outage
// tests rely on it), and while stopped the server really is gone.
func TestPostgresRowSurvivesRestart(t *testing.T) {
	pg := StartPostgres(t)
	ctx := context.Background()

	conn := pgConnect(t, pg.DSN())
	if _, err := conn.Exec(ctx, `CREATE TABLE users (name text PRIMARY KEY, logins int NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO users VALUES ($1, $2)`, "alice", 3); err != nil {
		t.Fatal(err)
	}

	pg.Stop(t)
	// Fast shutdown ended the open session.
	if err := conn.Ping(ctx); err == nil {
		t.Fatal("ping on a session of a stopped server succeeded")
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := pgx.Connect(cctx, pg.DSN())
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("connect to a stopped server: got %v, want connection refused", err)
	}

	pg.Start(t)
	var logins int
	if err := pgConnect(t, pg.DSN()).QueryRow(ctx, `SELECT logins FROM users WHERE name = $1`, "alice").Scan(&logins); err != nil {
		t.Fatalf("row after restart: %v", err)
	}
	if logins != 3 {
		t.Fatalf("logins after restart = %d, want 3", logins)
	}
}

// Each StartPostgres is a server of its own and each database starts
// empty: one test's tables and outages are invisible to another's.
func TestPostgresIsolation(t *testing.T) {
	a, b := StartPostgres(t), StartPostgres(t)
	if a.DSN() == b.DSN() {
		t.Fatalf("two servers share the DSN %s", a.DSN())
	}
	ctx := context.Background()
	if _, err := pgConnect(t, a.DSN()).Exec(ctx, `CREATE TABLE only_in_a (x int)`); err != nil {
		t.Fatal(err)
	}
	extra := a.NewDatabase(t)
	if extra == a.DSN() {
		t.Fatalf("NewDatabase returned the DSN of the first database")
	}
	bconn := pgConnect(t, b.DSN())
	a.Stop(t)

	tests := []struct {
		name string
		conn *pgx.Conn
	}{
		{"other server", bconn},
		{"new database on a (restarted)", nil},
	}
	a.Start(t)
	tests[1].conn = pgConnect(t, extra)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.conn.Exec(ctx, `SELECT * FROM only_in_a`)
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "42P01" { // undefined_table
				t.Fatalf("SELECT from a table of another database: got %v, want undefined_table", err)
			}
		})
	}
}

// Run as root, the server runs as PostgresUser, and only loopback is
// trusted: the settings the harness promises are the ones in force.
func TestPostgresSettings(t *testing.T) {
	pg := StartPostgres(t)
	conn := pgConnect(t, pg.DSN())
	ctx := context.Background()
	want := map[string]string{
		"listen_addresses": "127.0.0.1",
		"fsync":            "on",
		"shared_buffers":   "16MB",
		"max_connections":  "100",
		"server_version":   "",
	}
	for name, v := range want {
		var got string
		if err := conn.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if name == "server_version" {
			if len(got) < 3 || got[:3] != "15." {
				t.Errorf("server_version = %q, want 15.x", got)
			}
			continue
		}
		if got != v {
			t.Errorf("%s = %q, want %q", name, got, v)
		}
	}
	var dataDir string
	if err := conn.QueryRow(ctx, "SELECT current_setting('data_directory')").Scan(&dataDir); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	owner := fi.Sys().(*syscall.Stat_t).Uid
	if os.Geteuid() == 0 {
		if cred := postgresCredential(t); owner != cred.Uid {
			t.Errorf("data directory owned by uid %d, want %s (uid %d)", owner, PostgresUser, cred.Uid)
		}
	} else if owner != uint32(os.Geteuid()) {
		t.Errorf("data directory owned by uid %d, want the current user", owner)
	}
}
