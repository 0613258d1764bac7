package admin

import (
	"path/filepath"

	"github.com/gatewayd/gatewayd/config"
)

// ListenerConfig is the [admin] block of gatewayd.toml: where the API
// listens and where its bearer token lives. The daemon and the CLI both
// read it; the CLI needs nothing else from the file.
type ListenerConfig struct {
	Listen string `toml:"listen"`
	// TokenFile is the bearer token's file; empty means
	// <data_dir>/admin.token.
	TokenFile string `toml:"token_file"`
}

// DefaultListen is the admin API's address unless the file says.
const DefaultListen = "127.0.0.1:8480"

// Defaults sets the [admin] defaults.
func (c *ListenerConfig) Defaults() { *c = ListenerConfig{Listen: DefaultListen} }

// Validate checks the block.
func (c *ListenerConfig) Validate() error {
	if err := config.CheckListen(c.Listen); err != nil {
		return config.Errorf("listen", "%v", err)
	}
	return nil
}

// TokenPath is token_file, or its default under dataDir.
func (c *ListenerConfig) TokenPath(dataDir string) string {
	if c.TokenFile != "" {
		return c.TokenFile
	}
	return filepath.Join(dataDir, "admin.token")
}
