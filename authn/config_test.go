package authn

import (
	"reflect"
	"testing"
	"time"

	gatewayd "github.com/gatewayd/gatewayd"
	"github.com/gatewayd/gatewayd/internal/testutil"
)

func parseAuthn(t *testing.T, text string) (Config, error) {
	t.Helper()
	var c Config
	err := testutil.ParseBlock(t, "authn", &c, text)
	return c, err
}

func TestConfigDefaults(t *testing.T) {
	want := Config{
		Hash:                HashParams{Time: 1, MemoryKiB: 65536, Threads: 2, SaltLen: 16, KeyLen: 32},
		MaxConcurrentHashes: 4,
		QueueTimeout:        5 * time.Second,
		CacheTTL:            15 * time.Minute,
		Lockout:             LockoutPolicy{MaxFailures: 10, Window: 15 * time.Minute, Duration: 15 * time.Minute},
		RateLimit:           RateLimitPolicy{FailuresPerSecond: 1, Burst: 10, SourceFailuresPerSecond: 20, SourceBurst: 200},
		MinPasswordLength:   8,
		MaxPasswordLength:   256,
	}
	for _, text := range []string{"", "[authn]\n", "[authn]\n[authn.argon2]\n[authn.lockout]\n[authn.rate_limit]\n"} {
		c, err := parseAuthn(t, text)
		if err != nil {
			t.Fatalf("%q must load: %v", text, err)
		}
		if !reflect.DeepEqual(c, want) {
			t.Errorf("defaults from %q:\n got %+v\nwant %+v", text, c, want)
		}
	}

	ex, err := parseAuthn(t, testutil.ConfigSection(t, gatewayd.ExampleConfig, "authn"))
	if err != nil {
		t.Fatalf("the example's [authn]: %v", err)
	}
	if len(ex.UPNDomains) != 0 {
		t.Errorf("the example lists UPN domains: %v", ex.UPNDomains)
	}
	ex.UPNDomains = nil // upn_domains = [] there
	if !reflect.DeepEqual(ex, want) {
		t.Errorf("gatewayd.toml.example's [authn] differs from the defaults:\n got %+v\nwant %+v", ex, want)
	}

	// A key the file sets, even to zero, wins over its default; the
	// others of its table keep theirs.
	c, err := parseAuthn(t, "[authn]\ncredential_cache_ttl = \"0s\"\n[authn.lockout]\nmax_failures = 0\n[authn.argon2]\nthreads = 4\n")
	if err != nil {
		t.Fatal(err)
	}
	if c.CacheTTL != 0 || c.Lockout != (LockoutPolicy{Window: 15 * time.Minute, Duration: 15 * time.Minute}) ||
		c.Hash != (HashParams{Time: 1, MemoryKiB: 65536, Threads: 4, SaltLen: 16, KeyLen: 32}) {
		t.Errorf("zeros in the file: %+v", c)
	}
}

func TestConfigBounds(t *testing.T) {
	tests := []struct {
		table   string // "" for [authn] itself
		key     string
		ok, bad string // the value as written; the key is on line 2
		msg     string
	}{
		{"argon2", "time", "1", "0", "must be at least 1"},
		{"argon2", "threads", "1", "0", "must be at least 1"},
		{"argon2", "memory_kib", "16", "15", "must be between 8×threads and 4194304 (4 GiB)"}, // threads = 2
		{"argon2", "memory_kib", "4194304", "4194305", "must be between 8×threads and 4194304 (4 GiB)"},
		{"", "max_concurrent_hashes", "1", "0", "must be at least 1"},
		{"", "hash_queue_timeout", `"1ns"`, `"0s"`, "must be positive"},
		{"", "credential_cache_ttl", `"0s"`, `"-1s"`, `must not be negative ("0s" turns the cache off)`},
		{"", "min_password_length", "1", "0", "must be at least 1"},
		{"", "max_password_length", "8", "7", "must be at least min_password_length (8)"},
		{"lockout", "max_failures", "0", "-1", "must be 0 (off) or more"},
		{"rate_limit", "failures_per_second", "0.0", "-0.5", "must be 0 (off) or a positive finite number, got -0.5"},
		{"rate_limit", "failures_per_second", "1e9", "nan", "got NaN"},
		{"rate_limit", "failures_per_second", "1e9", "inf", "got +Inf"},
		{"rate_limit", "source_failures_per_second", "0.0", "-1.0", "must be 0 (off) or a positive finite number, got -1"},
		{"rate_limit", "source_failures_per_second", "1e9", "nan", "got NaN"},
		{"rate_limit", "burst", "0", "-1", "must not be negative"},
	}
	for _, tc := range tests {
		header, full := "[authn]\n", "authn."+tc.key
		if tc.table != "" {
			header, full = "[authn."+tc.table+"]\n", "authn."+tc.table+"."+tc.key
		}
		t.Run(full+"="+tc.bad, func(t *testing.T) {
			if _, err := parseAuthn(t, header+tc.key+" = "+tc.ok+"\n"); err != nil {
				t.Fatalf("%s = %s must be accepted: %v", full, tc.ok, err)
			}
			_, err := parseAuthn(t, header+tc.key+" = "+tc.bad+"\n")
			testutil.WantProblem(t, err, full, 2, tc.msg)
		})
	}
}

func TestConfigProblems(t *testing.T) {
	tests := []struct {
		name string
		text string
		key  string
		line int
		msg  string
	}{
		// memory_kib's lower bound follows threads: 255 need 2040 KiB.
		{"memory below 8×threads", "[authn.argon2]\nthreads = 255\nmemory_kib = 2039\n",
			"authn.argon2.memory_kib", 3, "must be between 8×threads"},
		{"max below a raised min", "[authn]\nmin_password_length = 300\n",
			"authn.max_password_length", 1, "must be at least min_password_length (300)"},
		{"lockout window with max_failures", "[authn.lockout]\nmax_failures = 3\nwindow = \"0s\"\n",
			"authn.lockout.window", 3, "must be positive when max_failures is set"},
		{"lockout duration with max_failures", "[authn.lockout]\nduration = \"-1m\"\n",
			"authn.lockout.duration", 2, "must be positive when max_failures is set"},
		{"second upn domain", "[authn]\nupn_domains = [\"example.com\", \"user@example.com\"]\n",
			"authn.upn_domains", 2, `entry 2, "user@example.com", is not a domain name`},
		{"empty upn domain", "[authn]\n\nupn_domains = [\"\"]\n",
			"authn.upn_domains", 3, `entry 1, "", is not a domain name`},
		{"upn domain with a space", "[authn]\nupn_domains = [\"example com\"]\n",
			"authn.upn_domains", 2, "is not a domain name"},
		{"unknown key", "[authn.lockout]\nmax_failure = 3\n",
			"authn.lockout.max_failure", 2, "unknown key"},
		{"salt is not a key", "[authn.argon2]\nsaltlen = 8\n",
			"authn.argon2.saltlen", 2, "unknown key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseAuthn(t, tc.text)
			testutil.WantProblem(t, err, tc.key, tc.line, tc.msg)
		})
	}
}

func TestConfigAccepts(t *testing.T) {
	for name, text := range map[string]string{
		"lockout off ignores its window":    "[authn.lockout]\nmax_failures = 0\nwindow = \"0s\"\nduration = \"0s\"\n",
		"threads at the top of their range": "[authn.argon2]\nthreads = 255\nmemory_kib = 2040\n",
		"rate limit off":                    "[authn.rate_limit]\nfailures_per_second = 0.0\nburst = 0\nsource_failures_per_second = 0.0\nsource_burst = 0\n",
		"min equal to max":                  "[authn]\nmin_password_length = 12\nmax_password_length = 12\n",
		"upn domains":                       "[authn]\nupn_domains = [\"example.com\", \"corp.example.com\"]\n",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := parseAuthn(t, text); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestConfigDecodeProblems(t *testing.T) {
	// threads is a byte: 256 does not fit.
	_, err := parseAuthn(t, "[authn.argon2]\nthreads = 256\n")
	testutil.WantProblem(t, err, "authn.argon2.threads", 2, "256 is out of range")
}

func TestConfigValidatedIsWhatNewRuns(t *testing.T) {
	// The lowest accepted argon2 costs run: New hashes its timing dummy
	// with them.
	c, err := parseAuthn(t, "[authn.argon2]\ntime = 1\nthreads = 1\nmemory_kib = 8\n[authn.rate_limit]\nfailures_per_second = 1e9\n")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(c, nil, nil, nil); err != nil {
		t.Fatalf("New with a validated config: %v", err)
	}
}
