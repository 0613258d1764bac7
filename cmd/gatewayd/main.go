// Command gatewayd is the identity gateway daemon and its admin CLI.
//
//	gatewayd [serve] [-config FILE]       run the daemon (embedded example config when -config is absent)
//	gatewayd check-config -config FILE    validate and exit non-zero with file:line problems
//	gatewayd user|group|events ...        administer a running daemon through its API
//	gatewayd store verify|accept-rollback|migrate  check, repair or move the store
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// exitError carries an exit code through the command tree.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		err = serveCommand(ctx, args, stderr)
	case "check-config":
		err = checkConfigCommand(args, stdout, stderr)
	case "store":
		err = storeCommand(args, stdout, stderr)
	case "user", "group", "events", "bind", "unbind", "directory", "import", "ad":
		err = cliCommand(cmd, args, stdin, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "gatewayd", version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "gatewayd: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			if ee.msg != "" {
				fmt.Fprintln(stderr, ee.msg)
			}
			return ee.code
		}
		fmt.Fprintln(stderr, "gatewayd:", err)
		return 1
	}
	return 0
}

const usage = `usage:
  gatewayd [serve] [-config FILE]           run the daemon (without -config: the embedded gatewayd.toml.example)
  gatewayd check-config -config FILE        validate the config; problems are printed as file:line: message
  gatewayd user create -username U -email E [-first-name F] [-last-name L] [-display-name D] [-staged] [-service-account] [-password-resetter] [-attr NAME=VALUE ...]
  gatewayd user get|delete|suspend|unsuspend|unlock USER
  gatewayd user list [-limit N] [-after USERNAME]
  gatewayd user update USER [-email E] [-first-name F] [-last-name L] [-display-name D] [-state S] [-password-status S] [-service-account=BOOL] [-password-resetter=BOOL] [-attr NAME=VALUE ...]
                                            -attr NAME= removes an attribute; see README for the attribute names
  gatewayd user passwd USER                 reads the new password from stdin (never from the command line)
  gatewayd user invite USER [-ttl 72h]      print a one-time activation link for the self-service page ([portal])
  gatewayd group create -name N [-description D]
  gatewayd group list | get G | delete G | add-member G USER | remove-member G USER
  gatewayd user sync USER                   per-directory binding and sync state
  gatewayd directory list
  gatewayd directory forget DIRECTORY       drop a removed directory's bindings and sync state (remote accounts stay)
  gatewayd directory pause|resume DIRECTORY  stop sending to a directory (changes wait) / send what waited (SPEC 6.6)
  gatewayd bind DIRECTORY -user U | -group G      provision into a directory (SPEC 4.1)
  gatewayd unbind DIRECTORY -user U | -group G    the account is disabled, never deleted
  gatewayd import list DIRECTORY [-page TOKEN]     the directory's enabled users (SPEC 4.7)
  gatewayd import users DIRECTORY UPN...  [-no-bind]   import them (password status pending)
  gatewayd ad import [NAME] [-dry-run] [-confirm-deletions]   run an AD import cycle now (SPEC 6.2); -dry-run changes nothing
  gatewayd ad status [NAME]                 per [[ad]] domain: last run, counts, errors, high-water mark, next run
  gatewayd ad pause|resume NAME             the domain's import and its write-back directories together (SPEC 6.6)
  gatewayd events [-user U] [-group G] [-type T] [-directory D] [-outcome success|failure] [-reason R]
                  [-since RFC3339] [-until RFC3339] [-limit N] [-after CURSOR]
  gatewayd store verify                     bbolt, with the daemon stopped: read the journal (read-only) and name every damaged record;
                                            postgres: check every record and the indexes built from them (replicas may run)
  gatewayd store accept-rollback            with the daemon stopped: continue from the older bbolt meta page when the newest is unreadable
  gatewayd store migrate                    with the daemon stopped: copy the bbolt journal in data_dir into the empty PostgreSQL database of [store] dsn, then verify the copy
Every CLI command takes -config FILE (to find the admin address and token) and -o table|json.
`
