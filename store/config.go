package store

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gatewayd/gatewayd/config"
)

// EventsConfig is the [events] block of gatewayd.toml.
type EventsConfig struct {
	// Retention is how many audit events are kept; the oldest beyond it
	// are dropped as new ones are written.
	Retention int `toml:"retention"`
}

// Defaults sets the [events] defaults.
func (c *EventsConfig) Defaults() { *c = EventsConfig{Retention: DefaultEventRetention} }

// Validate checks the block.
func (c *EventsConfig) Validate() error {
	if c.Retention < 1 {
		return config.Errorf("retention", "must be at least 1, got %d", c.Retention)
	}
	return nil
}

// DefaultMinFreeSpace is [store] min_free_space when the file leaves it
// out: 256 MiB. bbolt grows the journal 16 MiB at a time (its default
// AllocSize) and a schema upgrade rewrites every record in one
// transaction, which at 100,000 users needs on the order of 100 MiB more
// for a moment; a fixed floor says the same thing on a 10 GiB root and a
// 2 TiB data volume, where a percentage would be too small on one and
// far too large on the other.
const DefaultMinFreeSpace = 256 << 20

// Backends of [store] backend.
const (
	BackendBolt     = "bbolt"
	BackendPostgres = "postgres"
)

// Config is the [store] block of gatewayd.toml: the embedded journal in
// data_dir (backend "bbolt", the default), or a PostgreSQL database
// shared by several replicas (backend "postgres").
type Config struct {
	// Backend is "bbolt" or "postgres".
	Backend string `toml:"backend"`
	// MinFreeSpace is the free space in data_dir below which /healthz
	// reports the store down, before writes start failing with "no space
	// left on device". "0" turns the check off.
	MinFreeSpace ByteSize `toml:"min_free_space"`
	// DSN is the PostgreSQL connection string, as a secret reference
	// (env:NAME or file:PATH): it may hold a password.
	DSN config.Secret `toml:"dsn"`
	// Replica names this process in sync claims and leases (default:
	// host name, pid and a random tag).
	Replica string `toml:"replica"`
	// PollInterval is how often a replica looks for other replicas'
	// writes when no notification came.
	PollInterval time.Duration `toml:"poll_interval"`
	// EventQueue bounds login events held in memory while PostgreSQL is
	// unreachable; beyond it they are dropped, counted and logged.
	EventQueue int `toml:"event_queue"`
	// WriteTimeout bounds one database round of a write.
	WriteTimeout time.Duration `toml:"write_timeout"`
}

// Defaults sets the [store] defaults.
func (c *Config) Defaults() {
	*c = Config{
		Backend: BackendBolt, MinFreeSpace: DefaultMinFreeSpace,
		PollInterval: 500 * time.Millisecond, EventQueue: defaultPGEventQueue, WriteTimeout: 5 * time.Second,
	}
}

// Validate checks the block. ByteSize already refused what does not
// parse; a floor beyond any disk is surely a typo.
func (c *Config) Validate() error {
	if c.MinFreeSpace > 1<<50 {
		return config.Errorf("min_free_space", "%s is more than any disk holds (at most 1PiB)", c.MinFreeSpace)
	}
	switch c.Backend {
	case BackendBolt:
		if c.DSN.IsSet() {
			return config.Errorf("dsn", "is for backend = %q; the %q backend keeps its journal in data_dir", BackendPostgres, BackendBolt)
		}
	case BackendPostgres:
		if !c.DSN.IsSet() {
			return config.Errorf("dsn", "backend = %q needs the connection string: %s", BackendPostgres, config.ErrSecretRequired)
		}
	default:
		return config.Errorf("backend", "must be %q or %q, got %q", BackendBolt, BackendPostgres, c.Backend)
	}
	if c.PollInterval < 10*time.Millisecond || c.PollInterval > time.Minute {
		return config.Errorf("poll_interval", "must be between 10ms and 1m, got %v", c.PollInterval)
	}
	if c.EventQueue < 1000 {
		return config.Errorf("event_queue", "must be at least 1000, got %d", c.EventQueue)
	}
	if c.WriteTimeout < 100*time.Millisecond {
		return config.Errorf("write_timeout", "must be at least 100ms, got %v", c.WriteTimeout)
	}
	return nil
}

// Postgres is the backend options the block selects, nil for bbolt. The
// DSN must have been resolved.
func (c *Config) Postgres() *PostgresOptions {
	if c.Backend != BackendPostgres {
		return nil
	}
	return &PostgresOptions{
		DSN: string(c.DSN.Value.Bytes()), Replica: c.Replica, Poll: c.PollInterval,
		EventQueue: c.EventQueue, Timeout: c.WriteTimeout,
	}
}

// ByteSize is a size in bytes, written in gatewayd.toml as a string: a
// whole number with an optional binary unit, "0", "512KiB", "256MiB",
// "2GiB", "1TiB" (B, KiB, MiB, GiB, TiB, PiB; no decimal units, which
// would be ambiguous). A bare TOML integer is a number of bytes.
type ByteSize uint64

var byteUnits = []struct {
	name  string
	shift uint
}{{"PiB", 50}, {"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}}

// UnmarshalText parses "256MiB" and the like.
func (b *ByteSize) UnmarshalText(text []byte) error {
	s := strings.TrimSpace(string(text))
	num, shift := s, uint(0)
	for _, u := range byteUnits {
		if n, ok := strings.CutSuffix(s, u.name); ok {
			num, shift = strings.TrimSpace(n), u.shift
			break
		}
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil || num == "" {
		return fmt.Errorf("%q is not a size: write a whole number with an optional unit, e.g. \"256MiB\" (units: B, KiB, MiB, GiB, TiB, PiB)", s)
	}
	if shift > 0 && n > (1<<(64-shift))-1 {
		return fmt.Errorf("%q is too large", s)
	}
	*b = ByteSize(n << shift)
	return nil
}

// MarshalText writes the largest unit that divides the size exactly.
func (b ByteSize) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// String is the size as gatewayd.toml would write it.
func (b ByteSize) String() string {
	for _, u := range byteUnits {
		if u.shift > 0 && b != 0 && uint64(b)%(1<<u.shift) == 0 {
			return strconv.FormatUint(uint64(b)>>u.shift, 10) + u.name
		}
	}
	return strconv.FormatUint(uint64(b), 10) + "B"
}

// approx renders a size for a message, with one decimal.
func (b ByteSize) approx() string {
	for _, u := range byteUnits[:len(byteUnits)-1] {
		if uint64(b) >= 1<<u.shift {
			return strconv.FormatFloat(float64(b)/float64(uint64(1)<<u.shift), 'f', 1, 64) + " " + u.name
		}
	}
	return strconv.FormatUint(uint64(b), 10) + " B"
}
