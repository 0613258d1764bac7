package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/gatewayd/gatewayd/admin"
	"github.com/gatewayd/gatewayd/store"
)

// apiClient talks to a running daemon's admin API.
type apiClient struct {
	base  string
	token string
	http  *http.Client
}

func newAPIClient(cfg *fileConfig) (*apiClient, error) {
	host, port, err := net.SplitHostPort(cfg.Admin.Listen)
	if err != nil {
		return nil, err
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	// The CLI only reads the token; creating it is the daemon's job.
	tok, err := os.ReadFile(cfg.TokenFile())
	if err != nil {
		return nil, fmt.Errorf("cannot read the admin token (start the daemon once to create it, and run the CLI as a user who may read it): %w", err)
	}
	return &apiClient{
		base:  "http://" + net.JoinHostPort(host, port),
		token: string(bytes.TrimSpace(tok)),
		http:  &http.Client{Timeout: 30 * time.Second},
	}, nil
}

// do sends a request and decodes a JSON answer into out (when non-nil).
func (c *apiClient) do(method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the gatewayd admin API at %s (is the daemon running with this -config?): %w", c.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return &exitError{code: 1, msg: "gatewayd: " + e.Error}
		}
		return &exitError{code: 1, msg: fmt.Sprintf("gatewayd: %s %s: %s", method, path, resp.Status)}
	}
	if out != nil && len(data) > 0 {
		return json.Unmarshal(data, out)
	}
	return nil
}

// parseInterspersed lets flags follow positional arguments
// ("user get alice -o json"), which the flag package alone does not.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	output         string
	cfg            *fileConfig
	client         *apiClient // nil when the token could not be read
}

func cliCommand(cmd string, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	sub := ""
	if cmd != "events" && cmd != "bind" && cmd != "unbind" {
		if len(args) == 0 {
			return &exitError{code: 2, msg: fmt.Sprintf("gatewayd %s: which subcommand?\n\n%s", cmd, usage)}
		}
		sub, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet(strings.TrimSpace(cmd+" "+sub), flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "config file of the daemon to talk to (default: the embedded example)")
	output := fs.String("o", "table", "output: table or json")
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr}
	var run func(pos []string) error
	switch cmd + " " + sub {
	case "user create":
		run = c.userCreate(fs)
	case "user get", "user delete", "user suspend", "user unsuspend", "user unlock":
		run = c.userSimple(sub)
	case "user list":
		run = c.userList(fs)
	case "user update":
		run = c.userUpdate(fs)
	case "user passwd":
		run = c.userPasswd
	case "user invite":
		run = c.userInvite(fs)
	case "group create":
		run = c.groupCreate(fs)
	case "group list":
		run = c.groupList(fs)
	case "group get", "group delete":
		run = c.groupSimple(sub)
	case "group add-member", "group remove-member":
		run = c.groupMember(sub)
	case "events ":
		run = c.events(fs)
	case "bind ", "unbind ":
		run = c.bind(fs, cmd == "bind")
	case "directory list":
		run = c.directoryList
	case "directory forget":
		run = c.directoryForget
	case "directory pause", "directory resume":
		run = c.directoryPause(sub == "pause")
	case "ad pause", "ad resume":
		run = c.adPause(sub == "pause")
	case "user sync":
		run = c.userSync
	case "import list":
		run = c.importList(fs)
	case "import users":
		run = c.importUsers(fs)
	case "ad import":
		run = c.adImport(fs)
	case "ad status":
		run = c.adStatus
	default:
		return &exitError{code: 2, msg: fmt.Sprintf("gatewayd: unknown command %q\n\n%s", strings.TrimSpace(cmd+" "+sub), usage)}
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return &exitError{code: 2}
	}
	if *output != "table" && *output != "json" {
		return &exitError{code: 2, msg: "gatewayd: -o must be table or json"}
	}
	c.output = *output
	if c.cfg, err = loadCLIConfig(*configPath); err != nil {
		return err
	}
	if c.client, err = newAPIClient(c.cfg); err != nil && cmd+" "+sub != "directory forget" {
		return err
	}
	return run(pos)
}

func needArgs(pos []string, n int, what string) error {
	if len(pos) != n {
		return &exitError{code: 2, msg: "gatewayd: expected " + what}
	}
	return nil
}

// userRow is the subset of the API's user view the CLI prints.
type userRow struct {
	ID                 string            `json:"id"`
	Username           string            `json:"username"`
	Email              string            `json:"email"`
	FirstName          string            `json:"first_name"`
	LastName           string            `json:"last_name"`
	DisplayName        string            `json:"display_name"`
	Attributes         map[string]string `json:"attributes"`
	State              string            `json:"state"`
	PasswordStatus     string            `json:"password_status"`
	PasswordAuthority  string            `json:"password_authority"`
	DelegatedAuthority string            `json:"delegated_authority"`
	PasswordVersion    uint64            `json:"password_version"`
	ServiceAccount     bool              `json:"service_account"`
	PasswordResetter   bool              `json:"password_resetter"`
	UIDNumber          int               `json:"uid_number"`
	LastLoginAt        *time.Time        `json:"last_login_at"`
	PasswordChangedAt  *time.Time        `json:"password_changed_at"`
	PasswordExpiresAt  *time.Time        `json:"password_expires_at"`
	LockedUntil        *time.Time        `json:"locked_until"`
}

// when renders an optional time for a table.
func when(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.Local().Format(time.DateTime)
}

// emit prints raw JSON with -o json, or calls table otherwise.
func (c *cli) emit(raw json.RawMessage, table func() error) error {
	if c.output == "json" {
		var buf bytes.Buffer
		if err := json.Indent(&buf, raw, "", "  "); err != nil {
			return err
		}
		buf.WriteByte('\n')
		_, err := c.stdout.Write(buf.Bytes())
		return err
	}
	return table()
}

func (c *cli) userTable(users ...userRow) error {
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USERNAME\tEMAIL\tNAME\tSTATE\tPASSWORD\tUID\tLAST LOGIN")
	for _, u := range users {
		name := u.DisplayName
		if name == "" {
			name = strings.TrimSpace(u.FirstName + " " + u.LastName)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", u.Username, u.Email, dash(name), u.State, u.PasswordStatus, u.UIDNumber, dash(when(u.LastLoginAt)))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (c *cli) showUser(raw json.RawMessage) error {
	return c.emit(raw, func() error {
		var u userRow
		if err := json.Unmarshal(raw, &u); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		for _, kv := range [][2]string{
			{"id", u.ID}, {"username", u.Username}, {"email", u.Email}, {"first name", u.FirstName},
			{"last name", u.LastName}, {"display name", u.DisplayName}, {"state", u.State},
			{"password status", u.PasswordStatus}, {"password version", fmt.Sprint(u.PasswordVersion)},
			{"password authority", u.PasswordAuthority}, {"delegated authority", u.DelegatedAuthority},
			{"service account", fmt.Sprint(u.ServiceAccount)}, {"password resetter", fmt.Sprint(u.PasswordResetter)},
			{"uid number", fmt.Sprint(u.UIDNumber)},
			{"password changed", when(u.PasswordChangedAt)}, {"password expires", when(u.PasswordExpiresAt)},
			{"locked until", when(u.LockedUntil)}, {"last login", when(u.LastLoginAt)},
		} {
			fmt.Fprintf(tw, "%s:\t%s\n", kv[0], dash(kv[1]))
		}
		keys := make([]string, 0, len(u.Attributes))
		for k := range u.Attributes {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(tw, "attribute %s:\t%s\n", k, u.Attributes[k])
		}
		return tw.Flush()
	})
}

// attrFlag collects -attr NAME=VALUE flags; an empty VALUE removes NAME.
type attrFlag map[string]*string

func (a attrFlag) String() string { return "" }

func (a attrFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	k = strings.TrimSpace(k)
	if !ok || k == "" {
		return fmt.Errorf("want NAME=VALUE (NAME= removes the attribute), got %q", s)
	}
	if v == "" {
		a[k] = nil
	} else {
		a[k] = &v
	}
	return nil
}

func (c *cli) userCreate(fs *flag.FlagSet) func([]string) error {
	username := fs.String("username", "", "username (required)")
	email := fs.String("email", "", "email (required)")
	first := fs.String("first-name", "", "first name")
	last := fs.String("last-name", "", "last name")
	display := fs.String("display-name", "", "display name")
	staged := fs.Bool("staged", false, "create in state staged (cannot log in yet)")
	svc := fs.Bool("service-account", false, "may search the whole LDAP tree")
	resetter := fs.Bool("password-resetter", false, "may reset other users' passwords over LDAP")
	attrs := attrFlag{}
	fs.Var(attrs, "attr", "an attribute, NAME=VALUE (repeat it)")
	return func(pos []string) error {
		if err := needArgs(pos, 0, "no positional arguments (use -username and -email)"); err != nil {
			return err
		}
		body := map[string]any{"username": *username, "email": *email, "first_name": *first, "last_name": *last,
			"display_name": *display, "service_account": *svc, "password_resetter": *resetter}
		if len(attrs) > 0 {
			m := map[string]string{}
			for k, v := range attrs {
				if v != nil {
					m[k] = *v
				}
			}
			body["attributes"] = m
		}
		if *staged {
			body["state"] = "staged"
		}
		var raw json.RawMessage
		if err := c.client.do("POST", "/v1/users", body, &raw); err != nil {
			return err
		}
		return c.showUser(raw)
	}
}

func (c *cli) userSimple(sub string) func([]string) error {
	return func(pos []string) error {
		if err := needArgs(pos, 1, "one USER (username or id)"); err != nil {
			return err
		}
		p := "/v1/users/" + url.PathEscape(pos[0])
		var raw json.RawMessage
		var err error
		switch sub {
		case "get":
			err = c.client.do("GET", p, nil, &raw)
		case "delete":
			if err = c.client.do("DELETE", p, nil, nil); err == nil {
				fmt.Fprintf(c.stdout, "deleted user %s\n", pos[0])
			}
			return err
		default:
			err = c.client.do("POST", p+"/"+sub, nil, &raw)
		}
		if err != nil {
			return err
		}
		return c.showUser(raw)
	}
}

func (c *cli) userList(fs *flag.FlagSet) func([]string) error {
	limit := fs.Int("limit", 100, "users per page (1-1000)")
	after := fs.String("after", "", "start after this username (the next value of the previous page)")
	return func(pos []string) error {
		if err := needArgs(pos, 0, "no positional arguments"); err != nil {
			return err
		}
		var raw json.RawMessage
		q := url.Values{"limit": {fmt.Sprint(*limit)}, "after": {*after}}
		if err := c.client.do("GET", "/v1/users?"+q.Encode(), nil, &raw); err != nil {
			return err
		}
		return c.emit(raw, func() error {
			var page struct {
				Users []userRow `json:"users"`
				Next  string    `json:"next"`
			}
			if err := json.Unmarshal(raw, &page); err != nil {
				return err
			}
			if err := c.userTable(page.Users...); err != nil {
				return err
			}
			if page.Next != "" {
				fmt.Fprintf(c.stdout, "(more: -after %s)\n", page.Next)
			}
			return nil
		})
	}
}

func (c *cli) userUpdate(fs *flag.FlagSet) func([]string) error {
	var set []string
	strs := map[string]*string{}
	for _, name := range []string{"username", "email", "first-name", "last-name", "display-name", "state", "password-status", "password-authority", "delegated-authority"} {
		strs[name] = fs.String(name, "", "new "+strings.ReplaceAll(name, "-", " "))
	}
	bools := map[string]*bool{
		"service-account":   fs.Bool("service-account", false, "may search the whole LDAP tree"),
		"password-resetter": fs.Bool("password-resetter", false, "may reset other users' passwords over LDAP"),
	}
	attrs := attrFlag{}
	fs.Var(attrs, "attr", "set an attribute, NAME=VALUE (repeat it); NAME= removes one")
	return func(pos []string) error {
		if err := needArgs(pos, 1, "one USER (username or id)"); err != nil {
			return err
		}
		fs.Visit(func(f *flag.Flag) { set = append(set, f.Name) })
		body := map[string]any{}
		if len(attrs) > 0 {
			body["attribute_changes"] = attrs
		}
		for _, name := range set {
			key := strings.ReplaceAll(name, "-", "_")
			if p, ok := strs[name]; ok {
				body[key] = *p
			} else if p, ok := bools[name]; ok {
				body[key] = *p
			}
		}
		if len(body) == 0 {
			return &exitError{code: 2, msg: "gatewayd user update: nothing to change (give at least one field flag)"}
		}
		var raw json.RawMessage
		if err := c.client.do("PATCH", "/v1/users/"+url.PathEscape(pos[0]), body, &raw); err != nil {
			return err
		}
		return c.showUser(raw)
	}
}

// userPasswd reads the password from stdin: from a terminal without echo
// and twice, from a pipe as its first line. It never comes from argv,
// where ps and shell history would show it.
func (c *cli) userPasswd(pos []string) error {
	if err := needArgs(pos, 1, "one USER; the password is read from standard input"); err != nil {
		return err
	}
	pw, err := c.readPassword()
	if err != nil {
		return err
	}
	var raw json.RawMessage
	err = c.client.do("PUT", "/v1/users/"+url.PathEscape(pos[0])+"/password", map[string]string{"password": pw}, &raw)
	if err != nil {
		return err
	}
	if c.output == "json" {
		return c.showUser(raw)
	}
	fmt.Fprintf(c.stdout, "password set for %s\n", pos[0])
	return nil
}

func (c *cli) readPassword() (string, error) {
	if f, ok := c.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(c.stderr, "New password: ")
		a, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(c.stderr)
		if err != nil {
			return "", err
		}
		fmt.Fprint(c.stderr, "Again: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(c.stderr)
		if err != nil {
			return "", err
		}
		if !bytes.Equal(a, b) {
			return "", errors.New("the two passwords differ")
		}
		return string(a), nil
	}
	line, err := bufio.NewReader(c.stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("no password on standard input")
	}
	return line, nil
}

type groupRow struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Description string   `json:"description"`
	GIDNumber   int      `json:"gid_number"`
	Members     []string `json:"members"`
}

func (c *cli) groupTable(gs ...groupRow) error {
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tGID\tDESCRIPTION\tID")
	for _, g := range gs {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", g.Name, g.GIDNumber, dash(g.Description), g.ID)
	}
	return tw.Flush()
}

func (c *cli) groupCreate(fs *flag.FlagSet) func([]string) error {
	name := fs.String("name", "", "group name (required)")
	desc := fs.String("description", "", "description")
	return func(pos []string) error {
		if err := needArgs(pos, 0, "no positional arguments (use -name)"); err != nil {
			return err
		}
		var raw json.RawMessage
		if err := c.client.do("POST", "/v1/groups", map[string]string{"name": *name, "description": *desc}, &raw); err != nil {
			return err
		}
		return c.emit(raw, func() error {
			var g groupRow
			if err := json.Unmarshal(raw, &g); err != nil {
				return err
			}
			return c.groupTable(g)
		})
	}
}

func (c *cli) groupList(fs *flag.FlagSet) func([]string) error {
	limit := fs.Int("limit", 100, "groups per page (1-1000)")
	after := fs.String("after", "", "start after this group name")
	return func(pos []string) error {
		if err := needArgs(pos, 0, "no positional arguments"); err != nil {
			return err
		}
		var raw json.RawMessage
		q := url.Values{"limit": {fmt.Sprint(*limit)}, "after": {*after}}
		if err := c.client.do("GET", "/v1/groups?"+q.Encode(), nil, &raw); err != nil {
			return err
		}
		return c.emit(raw, func() error {
			var page struct {
				Groups []groupRow `json:"groups"`
				Next   string     `json:"next"`
			}
			if err := json.Unmarshal(raw, &page); err != nil {
				return err
			}
			if err := c.groupTable(page.Groups...); err != nil {
				return err
			}
			if page.Next != "" {
				fmt.Fprintf(c.stdout, "(more: -after %s)\n", page.Next)
			}
			return nil
		})
	}
}

func (c *cli) groupSimple(sub string) func([]string) error {
	return func(pos []string) error {
		if err := needArgs(pos, 1, "one GROUP (name or id)"); err != nil {
			return err
		}
		p := "/v1/groups/" + url.PathEscape(pos[0])
		if sub == "delete" {
			if err := c.client.do("DELETE", p, nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "deleted group %s\n", pos[0])
			return nil
		}
		var raw json.RawMessage
		if err := c.client.do("GET", p, nil, &raw); err != nil {
			return err
		}
		return c.emit(raw, func() error {
			var g groupRow
			if err := json.Unmarshal(raw, &g); err != nil {
				return err
			}
			if err := c.groupTable(g); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "members: %s\n", dash(strings.Join(g.Members, ", ")))
			return nil
		})
	}
}

func (c *cli) groupMember(sub string) func([]string) error {
	return func(pos []string) error {
		if err := needArgs(pos, 2, "GROUP USER"); err != nil {
			return err
		}
		method, verb := "PUT", "added"
		if sub == "remove-member" {
			method, verb = "DELETE", "removed"
		}
		if err := c.client.do(method, "/v1/groups/"+url.PathEscape(pos[0])+"/members/"+url.PathEscape(pos[1]), nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "%s %s %s group %s\n", verb, pos[1], map[bool]string{true: "to", false: "from"}[verb == "added"], pos[0])
		return nil
	}
}

func (c *cli) events(fs *flag.FlagSet) func([]string) error {
	user := fs.String("user", "", "only this user's events (username or id)")
	group := fs.String("group", "", "only events about this group (name or id)")
	typ := fs.String("type", "", "only this event type (ldap_bind, radius_auth, password_change, ...)")
	directory := fs.String("directory", "", "only events about this directory")
	outcome := fs.String("outcome", "", "only this outcome (success or failure)")
	reason := fs.String("reason", "", "only this failure reason (bad_password, locked, ...)")
	since := fs.String("since", "", "from this RFC 3339 time")
	until := fs.String("until", "", "before this RFC 3339 time")
	limit := fs.Int("limit", 100, "events per page (1-1000)")
	after := fs.String("after", "", "cursor: the next value of the previous page")
	return func(pos []string) error {
		if err := needArgs(pos, 0, "no positional arguments"); err != nil {
			return err
		}
		q := url.Values{"limit": {fmt.Sprint(*limit)}}
		for k, v := range map[string]string{"user": *user, "group": *group, "type": *typ, "directory": *directory,
			"outcome": *outcome, "reason": *reason, "since": *since, "until": *until, "after": *after} {
			if v != "" {
				q.Set(k, v)
			}
		}
		var raw json.RawMessage
		if err := c.client.do("GET", "/v1/events?"+q.Encode(), nil, &raw); err != nil {
			return err
		}
		return c.emit(raw, func() error {
			var page struct {
				Events []struct {
					Seq       uint64    `json:"seq"`
					Time      time.Time `json:"time"`
					Type      string    `json:"type"`
					Username  string    `json:"username"`
					Group     string    `json:"group"`
					Directory string    `json:"directory"`
					Outcome   string    `json:"outcome"`
					Reason    string    `json:"reason"`
					Source    string    `json:"source"`
					Detail    string    `json:"detail"`
				} `json:"events"`
				Next uint64 `json:"next"`
			}
			if err := json.Unmarshal(raw, &page); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SEQ\tTIME\tTYPE\tUSER\tGROUP\tDIRECTORY\tOUTCOME\tREASON\tSOURCE\tDETAIL")
			for _, e := range page.Events {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Seq, e.Time.Local().Format(time.DateTime), e.Type,
					dash(e.Username), dash(e.Group), dash(e.Directory), dash(e.Outcome), dash(e.Reason), dash(e.Source), dash(e.Detail))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if page.Next != 0 {
				fmt.Fprintf(c.stdout, "(more: -after %d)\n", page.Next)
			}
			return nil
		})
	}
}

// directoryForget drops a directory's bindings and sync state (SPEC 4.5).
// It asks the running daemon; when none answers (it refused to start
// because of this very directory), it opens the state journal itself.
func (c *cli) directoryForget(pos []string) error {
	if err := needArgs(pos, 1, "a directory name"); err != nil {
		return err
	}
	name := pos[0]
	var f store.Forgotten
	var err error
	if c.client != nil {
		err = c.client.do("DELETE", "/v1/directories/"+url.PathEscape(name), nil, &f)
	}
	if c.client == nil || errors.Is(err, syscall.ECONNREFUSED) {
		if c.cfg.Store.Backend == store.BackendPostgres {
			// The state is in PostgreSQL, not in data_dir: an empty
			// journal opened there would forget nothing.
			return fmt.Errorf("the daemon does not answer; with [store] backend = %q the state is in PostgreSQL, not in data_dir: run this against any running replica (its [admin] address in -config)", store.BackendPostgres)
		}
		f, err = forgetOffline(c.cfg.DataDir, name)
	}
	if err != nil {
		return err
	}
	if c.output == "json" {
		return json.NewEncoder(c.stdout).Encode(map[string]any{"directory": name, "bindings": f.Bindings, "sync_states": f.SyncStates})
	}
	fmt.Fprintf(c.stdout, "forgot directory %s: %d bindings and %d sync states dropped; its remote accounts are left as they are\n",
		name, f.Bindings, f.SyncStates)
	return nil
}

// directoryPause: gatewayd directory pause|resume DIRECTORY (SPEC 6.6).
func (c *cli) directoryPause(pause bool) func([]string) error {
	return func(pos []string) error {
		if err := needArgs(pos, 1, "a directory name"); err != nil {
			return err
		}
		verb := map[bool]string{true: "pause", false: "resume"}[pause]
		var res admin.DirectoryPause
		if err := c.client.do("POST", "/v1/directories/"+url.PathEscape(pos[0])+"/"+verb, nil, &res); err != nil {
			return err
		}
		if c.output == "json" {
			return json.NewEncoder(c.stdout).Encode(res)
		}
		if pause {
			fmt.Fprintf(c.stdout, "directory %s paused: nothing is sent to it; changes wait (%d jobs waiting) until gatewayd directory resume %s\n", res.Directory, res.Waiting, res.Directory)
		} else {
			fmt.Fprintf(c.stdout, "directory %s resumed: %d waiting jobs and every bound account are reconciled now\n", res.Directory, res.Waiting)
		}
		return nil
	}
}

// adPause: gatewayd ad pause|resume NAME: the [[ad]] domain's import and
// its write-back directories.
func (c *cli) adPause(pause bool) func([]string) error {
	return func(pos []string) error {
		if err := needArgs(pos, 1, "an [[ad]] block name"); err != nil {
			return err
		}
		verb := map[bool]string{true: "pause", false: "resume"}[pause]
		var res admin.ADPause
		if err := c.client.do("POST", "/v1/ad/"+url.PathEscape(pos[0])+"/"+verb, nil, &res); err != nil {
			return err
		}
		if c.output == "json" {
			return json.NewEncoder(c.stdout).Encode(res)
		}
		imp := "no import configured"
		if res.Import {
			imp = "import " + verb + "d"
		}
		dirs := "no write-back directory"
		if len(res.Directories) > 0 {
			dirs = "write-back " + strings.Join(res.Directories, ", ") + " " + verb + "d"
		}
		fmt.Fprintf(c.stdout, "ad %s %sd: %s; %s\n", res.Domain, verb, imp, dirs)
		return nil
	}
}

// forgetOffline forgets a directory in the journal of a stopped daemon.
func forgetOffline(dataDir, name string) (store.Forgotten, error) {
	st, err := store.Open(dataDir, store.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return store.Forgotten{}, fmt.Errorf("the daemon does not answer, and its state journal cannot be opened: %w", err)
	}
	f, err := st.ForgetDirectory(name)
	if err == nil {
		st.Emit(store.Event{Type: store.EventDirectoryForget, Outcome: store.OutcomeSuccess, Source: "cli", Directory: name,
			Detail: fmt.Sprintf("%d bindings, %d sync states", f.Bindings, f.SyncStates)})
	}
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, store.ErrNotFound) {
		return f, fmt.Errorf("the gateway knows no directory %q", name)
	}
	return f, err
}

func (c *cli) directoryList(pos []string) error {
	if err := needArgs(pos, 0, "no positional arguments"); err != nil {
		return err
	}
	var raw json.RawMessage
	if err := c.client.do("GET", "/v1/directories", nil, &raw); err != nil {
		return err
	}
	return c.emit(raw, func() error {
		var page struct {
			Directories []struct{ Name, Type string } `json:"directories"`
		}
		if err := json.Unmarshal(raw, &page); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tTYPE")
		for _, d := range page.Directories {
			fmt.Fprintf(tw, "%s\t%s\n", d.Name, d.Type)
		}
		return tw.Flush()
	})
}

// bind: gatewayd bind DIRECTORY -user U | -group G (unbind likewise).
func (c *cli) bind(fs *flag.FlagSet, bind bool) func([]string) error {
	user := fs.String("user", "", "bind this user (username or id)")
	group := fs.String("group", "", "bind this group (name or id): every member is provisioned")
	return func(pos []string) error {
		if err := needArgs(pos, 1, "DIRECTORY and one of -user or -group"); err != nil {
			return err
		}
		if (*user == "") == (*group == "") {
			return &exitError{code: 2, msg: "gatewayd: give exactly one of -user or -group"}
		}
		kind, ref := "users", *user
		if *group != "" {
			kind, ref = "groups", *group
		}
		method, verb := "PUT", "bound"
		if !bind {
			method, verb = "DELETE", "unbound"
		}
		if err := c.client.do(method, "/v1/directories/"+url.PathEscape(pos[0])+"/"+kind+"/"+url.PathEscape(ref), nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "%s %s %s %s directory %s\n", verb, strings.TrimSuffix(kind, "s"), ref, map[bool]string{true: "to", false: "from"}[bind], pos[0])
		return nil
	}
}

func (c *cli) userSync(pos []string) error {
	if err := needArgs(pos, 1, "one USER (username or id)"); err != nil {
		return err
	}
	var raw json.RawMessage
	if err := c.client.do("GET", "/v1/users/"+url.PathEscape(pos[0])+"/sync", nil, &raw); err != nil {
		return err
	}
	return c.emit(raw, func() error {
		var v struct {
			PasswordVersion uint64 `json:"password_version"`
			Directories     []struct {
				Directory     string   `json:"directory"`
				BoundDirectly bool     `json:"bound_directly"`
				BoundVia      []string `json:"bound_via_groups"`
				RemoteID      string   `json:"remote_id"`
				Provisioned   bool     `json:"provisioned"`
				Enabled       bool     `json:"enabled"`
				PushedVersion uint64   `json:"pushed_password_version"`
				PushPending   bool     `json:"password_push_pending"`
				Attempts      int      `json:"attempts"`
				Failed        bool     `json:"failed"`
				LastError     string   `json:"last_error"`
			} `json:"directories"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "DIRECTORY\tBOUND\tREMOTE ID\tPROVISIONED\tENABLED\tPASSWORD\tATTEMPTS\tLAST ERROR")
		for _, d := range v.Directories {
			bound := "no"
			switch {
			case d.BoundDirectly:
				bound = "directly"
			case len(d.BoundVia) > 0:
				bound = "via " + strings.Join(d.BoundVia, ",")
			}
			pw := fmt.Sprintf("v%d of v%d", d.PushedVersion, v.PasswordVersion)
			if d.PushPending {
				pw += " (push pending)"
			}
			errText := d.LastError
			if d.Failed {
				errText = "FAILED: " + errText
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%v\t%s\t%d\t%s\n", d.Directory, bound, dash(d.RemoteID), d.Provisioned, d.Enabled, pw, d.Attempts, dash(errText))
		}
		return tw.Flush()
	})
}

func (c *cli) importList(fs *flag.FlagSet) func([]string) error {
	page := fs.String("page", "", "page token (the next value of the previous page)")
	return func(pos []string) error {
		if err := needArgs(pos, 1, "DIRECTORY"); err != nil {
			return err
		}
		var raw json.RawMessage
		q := url.Values{}
		if *page != "" {
			q.Set("page", *page)
		}
		if err := c.client.do("GET", "/v1/directories/"+url.PathEscape(pos[0])+"/import?"+q.Encode(), nil, &raw); err != nil {
			return err
		}
		return c.emit(raw, func() error {
			var v struct {
				Users []struct {
					UPN, Username, DisplayName string
					Exists                     bool
				} `json:"users"`
				Next string `json:"next"`
			}
			if err := json.Unmarshal(raw, &v); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "UPN\tUSERNAME\tNAME\tIN GATEWAYD")
			for _, u := range v.Users {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%v\n", u.UPN, u.Username, dash(u.DisplayName), u.Exists)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if v.Next != "" {
				fmt.Fprintf(c.stdout, "(more: -page '%s')\n", v.Next)
			}
			return nil
		})
	}
}

func (c *cli) importUsers(fs *flag.FlagSet) func([]string) error {
	noBind := fs.Bool("no-bind", false, "do not bind the imported users to the directory")
	return func(pos []string) error {
		if len(pos) < 2 {
			return &exitError{code: 2, msg: "gatewayd: expected DIRECTORY and one or more UPNs"}
		}
		body := map[string]any{"users": pos[1:], "bind": !*noBind}
		var raw json.RawMessage
		if err := c.client.do("POST", "/v1/directories/"+url.PathEscape(pos[0])+"/import", body, &raw); err != nil {
			return err
		}
		var v struct {
			Results []struct{ User, Result, Username, Message string } `json:"results"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return err
		}
		failed := 0
		err := c.emit(raw, func() error {
			for _, r := range v.Results {
				line := r.User + ": " + r.Result
				if r.Username != "" && r.Result == "imported" {
					line += " as " + r.Username
				}
				if r.Message != "" {
					line += " (" + r.Message + ")"
				}
				fmt.Fprintln(c.stdout, line)
			}
			return nil
		})
		for _, r := range v.Results {
			if r.Result != "imported" {
				failed++
			}
		}
		if err == nil && failed > 0 {
			return &exitError{code: 1, msg: fmt.Sprintf("gatewayd: %d of %d users not imported", failed, len(v.Results))}
		}
		return err
	}
}
