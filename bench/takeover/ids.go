//go:build ignore

// ids prints the fake Graph's default tenant, client id or secret, so the
// bench script stays in step with internal/fakegraph.
package main

import (
	"fmt"
	"os"

	"github.com/gatewayd/gatewayd/internal/fakegraph"
)

func main() {
	switch os.Args[1] {
	case "tenant":
		fmt.Println(fakegraph.DefaultTenant)
	case "client":
		fmt.Println(fakegraph.DefaultClientID)
	case "secret":
		fmt.Println(fakegraph.DefaultClientSecret)
	}
}
