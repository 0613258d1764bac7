package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gatewayd/gatewayd/adimport"
)

// adDomainsToRun is NAME, or every domain with an import when it is absent.
func (c *cli) adDomainsToRun(pos []string) ([]string, error) {
	if len(pos) > 1 {
		return nil, &exitError{code: 2, msg: "gatewayd: expected at most one [[ad]] NAME"}
	}
	if len(pos) == 1 {
		return pos, nil
	}
	var all struct {
		Domains []adimport.Status `json:"domains"`
	}
	if err := c.client.do("GET", "/v1/ad", nil, &all); err != nil {
		return nil, err
	}
	var out []string
	for _, d := range all.Domains {
		out = append(out, d.Domain)
	}
	if len(out) == 0 {
		return nil, &exitError{code: 1, msg: "gatewayd: no [[ad]] block has an enabled [ad.import]"}
	}
	return out, nil
}

// adImport: gatewayd ad import [NAME] [-dry-run] [-confirm-deletions]
func (c *cli) adImport(fs *flag.FlagSet) func([]string) error {
	dry := fs.Bool("dry-run", false, "print the changes the cycle would make and change nothing")
	confirm := fs.Bool("confirm-deletions", false, "apply a cycle the safety stop (max_deletions, max_deletion_share) holds back")
	return func(pos []string) error {
		names, err := c.adDomainsToRun(pos)
		if err != nil {
			return err
		}
		failed := 0
		var results []adimport.Result
		for _, n := range names {
			var raw json.RawMessage
			if err := c.client.do("POST", "/v1/ad/"+url.PathEscape(n)+"/import", map[string]bool{"dry_run": *dry, "confirm_deletions": *confirm}, &raw); err != nil {
				return err
			}
			var res adimport.Result
			if err := json.Unmarshal(raw, &res); err != nil {
				return err
			}
			if res.Outcome != "success" {
				failed++
			}
			results = append(results, res)
		}
		var err2 error
		if c.output == "json" {
			b, _ := json.MarshalIndent(results, "", "  ")
			_, err2 = fmt.Fprintln(c.stdout, string(b))
		} else {
			for _, res := range results {
				c.printImport(res)
			}
		}
		if err2 != nil {
			return err2
		}
		if failed > 0 {
			return &exitError{code: 1, msg: fmt.Sprintf("gatewayd: %d of %d imports not applied", failed, len(results))}
		}
		return nil
	}
}

func (c *cli) printImport(res adimport.Result) {
	mode := res.Mode
	if res.DryRun {
		mode += ", dry run: nothing changed"
	}
	fmt.Fprintf(c.stdout, "ad %s (%s) via %s: %s\n", res.Domain, mode, dash(res.URL), res.Outcome)
	if res.Error != "" {
		fmt.Fprintf(c.stdout, "error: %s\n", res.Error)
	}
	if res.SafetyStop != "" {
		fmt.Fprintf(c.stdout, "safety stop: %s\n", res.SafetyStop)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ACTION\tUSER/GROUP\tDETAIL")
	for _, ch := range res.Changes {
		who := ch.User
		if who == "" {
			who = ch.Group
		}
		d := ch.Detail
		if ch.Error != "" {
			d = strings.TrimSpace(d + " FAILED: " + ch.Error)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", ch.Action, dash(who), dash(d))
	}
	tw.Flush()
	fmt.Fprintf(c.stdout, "%s\n", res.Counts)
}

// adStatus: gatewayd ad status [NAME]
func (c *cli) adStatus(pos []string) error {
	names, err := c.adDomainsToRun(pos)
	if err != nil {
		return err
	}
	var sts []adimport.Status
	for _, n := range names {
		var st adimport.Status
		if err := c.client.do("GET", "/v1/ad/"+url.PathEscape(n)+"/status", nil, &st); err != nil {
			return err
		}
		sts = append(sts, st)
	}
	if c.output == "json" {
		b, _ := json.MarshalIndent(sts, "", "  ")
		_, err := fmt.Fprintln(c.stdout, string(b))
		return err
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	for _, st := range sts {
		fmt.Fprintf(tw, "domain:\t%s\n", st.Domain)
		fmt.Fprintf(tw, "group:\t%s (root %s, every %s)\n", st.Group, st.Root, st.Interval)
		fmt.Fprintf(tw, "high-water mark:\t%d (DC %s)\n", st.HighUSN, dash(st.DC))
		next := "-"
		if st.Running {
			next = "running now"
		} else if st.NextRun != nil {
			next = st.NextRun.Local().Format(time.DateTime)
		}
		fmt.Fprintf(tw, "next run:\t%s\n", next)
		if st.Role != "" {
			fmt.Fprintf(tw, "role:\t%s\n", st.Role)
		}
		if l := st.LastRun; l != nil {
			fmt.Fprintf(tw, "last run:\t%s (%s, %s) %s via %s\n", l.Finished.Local().Format(time.DateTime), l.Mode,
				l.Finished.Sub(l.Started).Round(time.Millisecond), l.Outcome, dash(l.URL))
			fmt.Fprintf(tw, "counts:\t%s\n", l.Counts)
			if l.Error != "" {
				fmt.Fprintf(tw, "error:\t%s\n", l.Error)
			}
			if l.SafetyStop != "" {
				fmt.Fprintf(tw, "safety stop:\t%s\n", l.SafetyStop)
			}
			for _, ch := range l.Changes {
				fmt.Fprintf(tw, "failed:\t%s %s%s: %s\n", ch.Action, ch.User, ch.Group, ch.Error)
			}
		} else {
			fmt.Fprintf(tw, "last run:\tnever\n")
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}
