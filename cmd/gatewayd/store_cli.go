package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/gatewayd/gatewayd/store"
)

// storeCommand runs `gatewayd store verify|accept-rollback`: work on a
// stopped daemon's journal, found through the config's data_dir. They do
// not talk to the admin API.
func storeCommand(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return &exitError{code: 2, msg: "gatewayd store: which subcommand? (verify or accept-rollback)\n\n" + usage}
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("store "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "config file whose data_dir holds the journal (default: the embedded example)")
	output := fs.String("o", "table", "output: table or json")
	if sub != "verify" && sub != "accept-rollback" {
		return &exitError{code: 2, msg: fmt.Sprintf("gatewayd: unknown command %q\n\n%s", "store "+sub, usage)}
	}
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 {
		return &exitError{code: 2, msg: "gatewayd store " + sub + " takes only -config and -o"}
	}
	if *output != "table" && *output != "json" {
		return &exitError{code: 2, msg: "gatewayd: -o must be table or json"}
	}
	cfg, err := loadCLIConfig(*configPath)
	if err != nil {
		return err
	}
	if sub == "verify" {
		return storeVerify(cfg.DataDir, *output, stdout)
	}
	return storeAcceptRollback(cfg.DataDir, *output, stdout, stderr)
}

// storeVerify prints every damaged record; it exits 1 when there is one.
func storeVerify(dataDir, output string, stdout io.Writer) error {
	rep, err := store.VerifyJournal(dataDir)
	if err != nil {
		return err
	}
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
