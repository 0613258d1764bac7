package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/gatewayd/gatewayd/config"

	"github.com/gatewayd/gatewayd/store"
)

// storeCommand runs `gatewayd store verify|accept-rollback|migrate`:
// work on the store the config names (the journal in data_dir, or the
// PostgreSQL database of [store] dsn), not through the admin API.
func storeCommand(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return &exitError{code: 2, msg: "gatewayd store: which subcommand? (verify, accept-rollback or migrate)\n\n" + usage}
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("store "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "config file naming the store: data_dir, [store] (default: the embedded example)")
	output := fs.String("o", "table", "output: table or json")
	if sub != "verify" && sub != "accept-rollback" && sub != "migrate" {
		return &exitError{code: 2, msg: fmt.Sprintf("gatewayd: unknown command %q\n\n%s", "store "+sub, usage)}
	}
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 {
		return &exitError{code: 2, msg: "gatewayd store " + sub + " takes only -config and -o"}
	}
	if *output != "table" && *output != "json" {
		return &exitError{code: 2, msg: "gatewayd: -o must be table or json"}
	}
	cfg, err := load(*configPath, config.Options{Only: []string{"data_dir", "store"}})
	if err != nil {
		return err
	}
	pg := cfg.Store.Postgres()
	switch {
	case sub == "migrate":
		if pg == nil {
			return &exitError{code: 2, msg: fmt.Sprintf("gatewayd store migrate copies the bbolt journal in data_dir into PostgreSQL: set [store] backend = %q and dsn in %s first", store.BackendPostgres, cfg.Path())}
		}
		return storeMigrate(cfg.DataDir, pg.DSN, *output, stdout, stderr)
	case sub == "verify" && pg != nil:
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		rep, err := store.VerifyPostgres(ctx, pg.DSN)
		if err != nil {
			return err
		}
		return printVerify(rep, *output, stdout)
	case sub == "verify":
		return storeVerify(cfg.DataDir, *output, stdout)
	case pg != nil:
		return &exitError{code: 2, msg: "gatewayd store accept-rollback is for the bbolt journal; a PostgreSQL store has no meta pages to choose between"}
	}
	return storeAcceptRollback(cfg.DataDir, *output, stdout, stderr)
}

// storeMigrate copies the bbolt journal into PostgreSQL and verifies the
// copy.
func storeMigrate(dataDir, dsn, output string, stdout, stderr io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rep, err := store.MigrateToPostgres(ctx, dataDir, dsn, log)
	if err != nil {
		return err
	}
	ver, err := store.VerifyPostgres(ctx, dsn)
	if err != nil {
		return fmt.Errorf("the copy was made but cannot be verified: %w", err)
	}
	if output == "json" {
		b, _ := json.MarshalIndent(map[string]any{"migrated": rep, "verify": ver}, "", "  ")
		fmt.Fprintf(stdout, "%s\n", b)
	} else {
		fmt.Fprintf(stdout, "copied %s into %s:\n", rep.Journal, rep.Database)
		for _, t := range slices.Sorted(maps.Keys(rep.Records)) {
			fmt.Fprintf(stdout, "  %-12s %d\n", t, rep.Records[t])
		}
	}
	if !ver.OK() {
		if output != "json" {
			_ = printVerify(ver, output, stdout)
		}
		return &exitError{code: 1, msg: "gatewayd: the copy in PostgreSQL does not verify (see above); the bbolt journal is unchanged"}
	}
	if output != "json" {
		fmt.Fprintf(stdout, "verified: %d records; the bbolt journal is unchanged (keep it as a backup)\n", ver.Records)
	}
	return nil
}

// storeVerify prints every damaged record; it exits 1 when there is one.
func storeVerify(dataDir, output string, stdout io.Writer) error {
	rep, err := store.VerifyJournal(dataDir)
	if err != nil {
		return err
	}
	return printVerify(rep, output, stdout)
}

func printVerify(rep *store.JournalReport, output string, stdout io.Writer) error {
	if output == "json" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\n", b)
	} else {
		fmt.Fprintf(stdout, "journal %s (schema version %d): %d records read\n", rep.Path, rep.SchemaVersion, rep.Records)
		for _, n := range rep.Notes {
			fmt.Fprintf(stdout, "note: %s\n", n)
		}
		for _, p := range rep.Problems {
			fmt.Fprintf(stdout, "problem: %s\n", p)
		}
		for _, d := range rep.Damaged {
			fmt.Fprintf(stdout, "damaged: bucket %s, key %s: %s\n", d.Bucket, d.Key, d.Problem)
		}
		if rep.MoreDamaged > 0 {
			fmt.Fprintf(stdout, "damaged: %d more records not listed\n", rep.MoreDamaged)
		}
		if rep.Dependent > 0 {
			fmt.Fprintf(stdout, "%d further records are fine but refer to a damaged one\n", rep.Dependent)
		}
		if rep.OK() {
			fmt.Fprintln(stdout, "ok")
		}
	}
	if rep.OK() {
		return nil
	}
	msg := "gatewayd: the journal is damaged: restore it from a backup"
	if strings.Contains(strings.Join(rep.Problems, " "), "accept-rollback") {
		msg += ", or accept the rollback (see the problem above)"
	}
	return &exitError{code: 1, msg: msg}
}

// storeAcceptRollback continues from the older meta page on purpose.
func storeAcceptRollback(dataDir, output string, stdout, stderr io.Writer) error {
	rb, err := store.AcceptRollback(dataDir, slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		return err
	}
	if output == "json" {
		b, _ := json.Marshal(map[string]any{"kept_transaction": rb.Kept, "dropped_transaction": rb.Dropped, "lost": rb.Lost})
		fmt.Fprintf(stdout, "%s\n", b)
		return nil
	}
	if rb.Lost {
		fmt.Fprintf(stdout, "rolled back: the journal continues from transaction %d; transaction %d, if the unreadable page held it, is dropped\n", rb.Kept, rb.Kept+1)
	} else {
		fmt.Fprintf(stdout, "the older meta page was rewritten; nothing was dropped (the journal continues from transaction %d)\n", rb.Kept)
	}
	return nil
}
