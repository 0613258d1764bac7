package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatewayd/gatewayd/config"
	"github.com/gatewayd/gatewayd/delegation"
)

// adDomains turns the [[ad]] blocks into the delegator's domains.
func adDomains(c *fileConfig) []delegation.Domain {
	out := make([]delegation.Domain, 0, len(c.AD))
	for i := range c.AD {
		out = append(out, c.AD[i].Runtime())
	}
	return out
}

// startDelegator builds the AD delegator from [[ad]] and probes every DC
// once. A DC whose certificate does not verify is a configuration problem
// (file:line) that stops the start; an unreachable DC is only reported:
// it is marked down and re-probed in the background. It returns nil, nil
// when no [[ad]] block is configured.
func startDelegator(c *fileConfig, logger *slog.Logger, reg prometheus.Registerer, warn func(msg string)) (*delegation.Delegator, error) {
	if len(c.AD) == 0 {
		return nil, nil
	}
	dg, err := delegation.New(delegation.Config{Domains: adDomains(c), Logger: logger, Registerer: reg})
	if err != nil {
		return nil, config.Problems{c.Errorf("ad", "%v", err)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var ps config.Problems
	for _, r := range dg.Start(ctx) {
		if r.Err == nil {
			continue
		}
		if delegation.IsCertError(r.Err) {
			ps = append(ps, c.Errorf(adPath(c, r.Domain, "ca_file"), "ad %q: %s: %v", r.Domain, r.URL, r.Err))
			continue
		}
		warn(fmt.Sprintf("ad %q: domain controller %s is unreachable: %v", r.Domain, r.URL, r.Err))
	}
	if len(ps) > 0 {
		dg.Close()
		return nil, ps
	}
	return dg, nil
}

// adPath is the config key path of key in the [[ad]] block named name.
func adPath(c *fileConfig, name, key string) string {
	for i, a := range c.AD {
		if a.Name == name {
			return fmt.Sprintf("ad[%d].%s", i, key)
		}
	}
	return "ad"
}

// newDelegator is startDelegator for the daemon.
func (d *daemon) newDelegator() (*delegation.Delegator, error) {
	if len(d.cfg.AD) == 0 {
		return nil, nil
	}
	return startDelegator(d.cfg, d.log.With("component", "ad"), d.reg, func(msg string) {
		d.log.Warn(msg + " (marked down; logins skip it until a background probe reaches it)")
	})
}

// checkAD is check-config's part for [[ad]]: certificates that do not
// verify fail the check; unreachable DCs are printed as warnings.
func checkAD(c *fileConfig, stderr io.Writer) error {
	dg, err := startDelegator(c, nil, nil, func(msg string) { fmt.Fprintln(stderr, "warning:", msg) })
	if err != nil {
		return err
	}
	if dg != nil {
		dg.Close()
	}
	return nil
}

// adSummary renders the [[ad]] blocks for SIGHUP's "needs a restart"
// comparison (secrets and parsed CA pools left out).
func adSummary(c *fileConfig) string {
	var b strings.Builder
	for _, a := range c.AD {
		fmt.Fprintf(&b, "%s %s %v tls=%v ca=%s sn=%s insecure=%v base=%s bind=%s/%s attr=%s ct=%v t=%v pool=%d probe=%v hash=%v offline=%v; ",
			a.Name, a.Domain, a.URLs, a.StartTLS, a.CAFile, a.TLSServerName, a.AllowInsecure, a.BaseDN, a.BindDN, a.BindPassword,
			a.UsernameAttribute, a.ConnectTimeout, a.Timeout, a.PoolSize, a.ProbeInterval, a.StoreHash, a.OfflineLogin)
		fmt.Fprintf(&b, "import=%+v; ", a.Import)
	}
	return b.String()
}
