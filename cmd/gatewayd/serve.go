package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"reflect"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/gatewayd/gatewayd/admin"
	"github.com/gatewayd/gatewayd/authn"
	"github.com/gatewayd/gatewayd/config"
	"github.com/gatewayd/gatewayd/delegation"
	"github.com/gatewayd/gatewayd/ldapserver"
	"github.com/gatewayd/gatewayd/portal"
	"github.com/gatewayd/gatewayd/radiusserver"
	"github.com/gatewayd/gatewayd/store"
	gwsync "github.com/gatewayd/gatewayd/sync"
)

// shutdownGrace bounds the drain after SIGTERM: systemd's default stop
// timeout is 90 s, but an operator expects a restart to be quick.
const shutdownGrace = 10 * time.Second

func serveCommand(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "config file (default: the embedded gatewayd.toml.example)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file (for benchmarks)")
	memprofile := fs.String("memprofile", "", "write a heap profile (live and allocated) to this file on each SIGUSR1 and at exit (for benchmarks)")
	if err := fs.Parse(args); err != nil {
		return &exitError{code: 2}
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	if *memprofile != "" {
		stop := heapProfileOnSignal(*memprofile, stderr)
		defer stop()
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return &exitError{code: 1, msg: err.Error()}
	}
	restoreGC := startupGC()
	d, err := newDaemon(cfg, *path, stderr)
	restoreGC()
	if err == nil {
		// Loading left the heap at up to 5x the live state (GOGC 400
		// above), and the runtime's scavenger hands the freed part back
		// over minutes: a restarted 100k-user daemon answered /healthz at
		// ~310 MB RSS with ~160 MB live (bench/scale). One collection and
		// scavenge before serving costs that start ~0.2 s.
		debug.FreeOSMemory()
	}
	if err != nil {
		var ps config.Problems
		if errors.As(err, &ps) {
			return &exitError{code: 1, msg: ps.Error()}
		}
		return err
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	return d.run(ctx, hup)
}

// startupGCPercent is the GOGC used while the daemon loads its state.
// Loading builds the whole memdb view at once, and at the default 100
// the GC re-marks the growing heap at every doubling: with 100k users
// (bench/scale, loaded 2-core VM) 400 took a restart from ~5.7 to ~4.1
// CPU seconds, for a start-up peak ~70 MB higher and ~50 MB more RSS
// afterwards (sparser heap spans the GC cannot hand back). Setting GOGC
// keeps the operator's value throughout; GOMEMLIMIT still caps the peak.
const startupGCPercent = 400

// startupGC raises GOGC for the start-up unless the operator set GOGC,
// and returns the function that puts it back.
func startupGC() func() {
	if os.Getenv("GOGC") != "" {
		return func() {}
	}
	old := debug.SetGCPercent(startupGCPercent)
	return func() { debug.SetGCPercent(old) }
}

// heapProfileOnSignal writes a heap profile to path (replacing it) each
// time the process gets SIGUSR1, so a benchmark can see where the bytes
// are at the moment it measures RSS. The returned func stops listening.
func heapProfileOnSignal(path string, stderr io.Writer) func() {
	write := func() {
		runtime.GC() // the profile shows live objects as of the last GC
		f, err := os.Create(path)
		if err == nil {
			err = pprof.Lookup("heap").WriteTo(f, 0)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			fmt.Fprintf(stderr, "gatewayd: heap profile %s: %v\n", path, err)
		}
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1)
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		for {
			select {
			case <-sig:
				write()
			case <-done:
				return
			}
		}
	}()
	// The last profile is taken at exit, so a run without signals (the
	// RADIUS bench reads alloc_space over the whole run) still gets one.
	return func() { signal.Stop(sig); close(done); <-exited; write() }
}

func checkConfigCommand(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "config file to check (default: the embedded example)")
	noBind := fs.Bool("no-bind-check", false, "skip trying the listen addresses (use while the daemon runs)")
	if err := fs.Parse(args); err != nil {
		return &exitError{code: 2}
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return &exitError{code: 1, msg: err.Error()}
	}
	// loadConfig ran every block's validation, as serve does; what serve
	// checks beyond that is the DCs' certificates and the ports.
	if err := checkAD(cfg, stderr); err != nil {
		return &exitError{code: 1, msg: err.Error()}
	}
	if !*noBind {
		if ps := cfg.checkPorts(); len(ps) > 0 {
			return &exitError{code: 1, msg: ps.Error()}
		}
	}
	fmt.Fprintf(stdout, "%s: ok\n", cfg.Path())
	return nil
}

// daemon is one running gatewayd: everything wired from one config.
type daemon struct {
	cfg      *fileConfig
	path     string
	level    *slog.LevelVar
	log      *slog.Logger
	reg      *prometheus.Registry
	store    *store.Store
	auth     *authn.Authenticator
	adminL   net.Listener
	adminSrv *http.Server
	doors    []door
	radius   *radiusserver.Server
	ldap     *ldapserver.Server
	portal   *portal.Server
	engine   *gwsync.Engine
	ad       *delegation.Delegator
	// importers are the directories users can be imported from.
	importers map[string]admin.ImportSource
}

// door is a front door (LDAP, RADIUS) with its own serve loop.
type door interface {
	Serve(ctx context.Context) error
}

func newLogger(cfg *fileConfig, w io.Writer) (*slog.Logger, *slog.LevelVar) {
	level := new(slog.LevelVar)
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if cfg.Log.Format == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(h), level
}

func newDaemon(cfg *fileConfig, path string, logw io.Writer) (_ *daemon, err error) {
	d := &daemon{cfg: cfg, path: path}
	d.log, d.level = newLogger(cfg, logw)
	d.reg = prometheus.NewRegistry()
	d.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	defer func() {
		if err != nil {
			d.closeAll()
		}
	}()

	d.store, err = store.Open(cfg.DataDir, store.Options{
		EventRetention: cfg.Events.Retention, MinFreeSpace: uint64(cfg.Store.MinFreeSpace), Logger: d.log,
		Postgres: cfg.Store.Postgres(),
	})
	if err != nil {
		if cfg.Store.Backend == store.BackendPostgres {
			return nil, fmt.Errorf("%s: [store] backend = %q: %w", cfg.Path(), cfg.Store.Backend, err)
		}
		return nil, fmt.Errorf("%s: data_dir %s: %w", cfg.Path(), cfg.DataDir, err)
	}
	st := d.store
	d.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "gatewayd_store_events_dropped_total",
		Help: "Login events dropped because the queue was full while PostgreSQL was unreachable (the embedded store never drops).",
	}, func() float64 { return float64(st.DroppedEvents()) }))
	if d.engine, err = d.newEngine(); err != nil {
		return nil, err
	}
	// Lockout counts go through the store when it shares them across
	// replicas (issue 16); the embedded store keeps them in authn.
	authnOpts := []authn.Option{authn.WithRegisterer(d.reg), authn.WithFailureCounter(d.store)}
	if d.engine != nil {
		authnOpts = append(authnOpts, authn.WithObserver(d.engine))
	}
	if d.ad, err = d.newDelegator(); err != nil {
		return nil, err
	} else if d.ad != nil {
		authnOpts = append(authnOpts, authn.WithDelegator(d.ad))
	}
	d.auth, err = authn.New(cfg.Authn, d.store, d.store, d.log.With("component", "authn"), authnOpts...)
	if err != nil {
		return nil, err
	}
	d.store.Subscribe(d.auth.HandleChange)

	if err := d.addDoors(); err != nil {
		return nil, err
	}
	imports := d.newADImports()
	d.doors = append(d.doors, imports.doors()...)
	token, created, err := admin.LoadOrCreateToken(cfg.TokenFile())
	if err != nil {
		return nil, err
	}
	if created {
		d.log.Info("created admin token file", "path", cfg.TokenFile())
	}
	var invites admin.Inviter
	if d.portal != nil {
		invites = d.portal
	}
	api := admin.New(d.store, d.auth, admin.Config{
		Token: token, Gatherer: d.reg, Logger: d.log.With("component", "admin"),
		Checks:    d.healthChecks(),
		Importers: d.importers,
		Forget:    d.forgetDirectory,
		ADImport:  imports,
		Invites:   invites,
		Pause:     d.pauseDirectory,
		PauseAD:   func(name string, paused bool) (*admin.ADPause, error) { return d.pauseAD(imports, name, paused) },
	}, d.reg)
	if d.adminL, err = net.Listen("tcp", cfg.Admin.Listen); err != nil {
		return nil, config.Problems{cfg.Errorf("admin.listen", "cannot listen on %s: %v", cfg.Admin.Listen, err)}
	}
	d.adminSrv = &http.Server{
		Handler:           api,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(d.log.Handler(), slog.LevelWarn),
	}
	return d, nil
}

// healthChecks are /healthz's checks (admin/README.md names them): the
// store can write, each door serves, and one per AD domain.
func (d *daemon) healthChecks() map[string]admin.HealthCheck {
	checks := map[string]admin.HealthCheck{"store": d.store.Health}
	if d.ldap != nil {
		checks["ldap"] = func(context.Context) error { return d.ldap.Health() }
	}
	if d.radius != nil {
		checks["radius"] = func(context.Context) error { return d.radius.Health() }
	}
	if d.portal != nil {
		checks["portal"] = func(context.Context) error { return d.portal.Health() }
	}
	if d.ad != nil {
		for name, fn := range d.ad.HealthChecks() {
			checks[name] = fn
		}
	}
	return checks
}

// forgetDirectory is `gatewayd directory forget` on the running daemon:
// the engine lets go of the directory first, so deleting its bindings
// deprovisions nothing (SPEC 4.5).
func (d *daemon) forgetDirectory(name string) (store.Forgotten, error) {
	if d.engine != nil {
		d.engine.Forget(name)
	}
	return d.store.ForgetDirectory(name)
}

func (d *daemon) closeAll() {
	if d.adminL != nil {
		d.adminL.Close()
	}
	if d.ad != nil {
		d.ad.Close()
	}
	if d.store != nil {
		if err := d.store.Close(); err != nil {
			d.log.Error("closing the store", "err", err)
		}
	}
}

func (d *daemon) run(ctx context.Context, hup <-chan os.Signal) error {
	d.log.Info("gatewayd started", "version", version, "config", d.cfg.Path(), "data_dir", d.cfg.DataDir, "admin", d.adminL.Addr().String())
	doorCtx, stopDoors := context.WithCancel(context.Background())
	defer stopDoors()
	errc := make(chan error, len(d.doors)+1)
	var wg sync.WaitGroup
	engineDone := make(chan struct{})
	if d.engine != nil {
		go func() { d.engine.Run(doorCtx); close(engineDone) }()
	} else {
		close(engineDone)
	}
	go func() {
		if err := d.adminSrv.Serve(d.adminL); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("admin API: %w", err)
		}
	}()
	for _, dr := range d.doors {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := dr.Serve(doorCtx); err != nil && doorCtx.Err() == nil {
				errc <- err
			}
		}()
	}

	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			d.log.Info("shutting down: draining in-flight work", "grace", shutdownGrace)
			break loop
		case err := <-errc:
			d.log.Error("a listener failed; shutting down", "err", err)
			runErr = err
			break loop
		case <-hup:
			d.reload()
		}
	}

	deadline, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	stopDoors()
	if err := d.adminSrv.Shutdown(deadline); err != nil {
		d.log.Warn("admin API did not drain in time", "err", err)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-deadline.Done():
		d.log.Warn("front doors did not drain in time")
	}
	select {
	case <-engineDone:
	case <-deadline.Done():
		d.log.Warn("sync engine did not stop in time; unfinished jobs resume at the next start")
	}
	if d.ad != nil {
		d.ad.Close()
	}
	if err := d.store.Close(); err != nil {
		d.log.Error("closing the store", "err", err)
		if runErr == nil {
			runErr = err
		}
	}
	d.log.Info("gatewayd stopped")
	return runErr
}

// reload applies what can change without a restart and says what cannot.
func (d *daemon) reload() {
	nc, err := loadConfig(d.path)
	if err != nil {
		d.log.Error("SIGHUP: config not reloaded, keeping the running one", "problems", err.Error())
		return
	}
	_ = d.level.UnmarshalText([]byte(nc.Log.Level))
	d.auth.SetPolicy(nc.Authn)
	d.reloadDoors(nc)
	old := d.cfg
	changes := []restartChange{
		{"data_dir", old.DataDir, nc.DataDir},
		{"admin.listen", old.Admin.Listen, nc.Admin.Listen},
		{"admin.token_file", old.TokenFile(), nc.TokenFile()},
		{"log.format", old.Log.Format, nc.Log.Format},
		{"authn.max_concurrent_hashes", old.Authn.MaxConcurrentHashes, nc.Authn.MaxConcurrentHashes},
		{"events.retention", old.Events.Retention, nc.Events.Retention},
		{"store.min_free_space", old.Store.MinFreeSpace, nc.Store.MinFreeSpace},
		{"directory", blockSummary(old.Directories), blockSummary(nc.Directories)},
		{"sync", fmt.Sprint(old.Sync), fmt.Sprint(nc.Sync)},
		{"ad", adSummary(old), adSummary(nc)},
	}
	// Every [ldap] key needs a restart but the certificate files (re-read
	// on SIGHUP); every [radius] key but the clients (reloaded).
	changes = append(changes, changedKeys("ldap", old.LDAP, nc.LDAP, "cert_file", "key_file")...)
	changes = append(changes, changedKeys("radius", old.RADIUS, nc.RADIUS, "client")...)
	for _, ch := range changes {
		if ch.old != ch.new {
			d.log.Warn("SIGHUP: this change needs a restart to take effect", "key", ch.key, "running", ch.old, "configured", ch.new)
		}
	}
	d.cfg = nc
	d.log.Info("SIGHUP: configuration reloaded", "config", nc.Path(), "log_level", nc.Log.Level)
}

// blockSummary renders blocks for SIGHUP's "needs a restart" comparison.
// Each is printed on its own so fmt shows the struct, not its address;
// secrets print as their references.
func blockSummary[T any](blocks []T) string {
	var b strings.Builder
	for _, blk := range blocks {
		fmt.Fprintf(&b, "%+v; ", blk)
	}
	return b.String()
}

// restartChange is one setting a SIGHUP does not apply, as running and as
// configured.
type restartChange struct {
	key      string
	old, new any
}

// changedKeys compares two values of a block key by key (its toml tags)
// and returns the keys that differ, but those in skip.
func changedKeys(prefix string, old, new any, skip ...string) []restartChange {
	ov, nv := reflect.ValueOf(old), reflect.ValueOf(new)
	var out []restartChange
	for i := 0; i < ov.NumField(); i++ {
		key, _, _ := strings.Cut(ov.Type().Field(i).Tag.Get("toml"), ",")
		if key == "" || key == "-" || slices.Contains(skip, key) {
			continue
		}
		o, n := fmt.Sprintf("%+v", ov.Field(i).Interface()), fmt.Sprintf("%+v", nv.Field(i).Interface())
		if o != n {
			out = append(out, restartChange{prefix + "." + key, o, n})
		}
	}
	return out
}
