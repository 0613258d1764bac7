// Command fakegraphd serves the in-repo fake Microsoft Graph on loopback
// for benchmarks that drive the real daemon (tests use it in-process).
//
//	fakegraphd -latency 2s     prints "url http://127.0.0.1:PORT" and serves until killed
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gatewayd/gatewayd/internal/fakegraph"
)

func main() {
	latency := flag.Duration("latency", 0, "delay added to every Graph call")
	flag.Parse()
	fg := fakegraph.New()
	defer fg.Close()
	fg.Latency(*latency)
	fmt.Printf("url %s\n", fg.URL())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-sig:
			var pushes int
			for _, r := range fg.Requests() {
				if r.Method == "PATCH" && r.HadPasswordProfile {
					pushes++
				}
			}
			fmt.Fprintf(os.Stderr, "fakegraphd: %d users, %d password pushes\n", len(fg.Users()), pushes)
			return
		case <-tick.C:
		}
	}
}
