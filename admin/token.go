package admin

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/gatewayd/gatewayd/secret"
)

// LoadOrCreateToken reads the admin bearer token, creating the file with a
// random value and mode 0600 when it does not exist yet.
func LoadOrCreateToken(path string) (secret.String, bool, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		b = bytes.TrimSpace(b)
		if len(b) < 16 {
			return secret.String{}, false, fmt.Errorf("admin token file %s holds fewer than 16 characters; write a long random token or delete the file to have one generated", path)
		}
		if st, err := os.Stat(path); err == nil && st.Mode().Perm()&0o077 != 0 {
			return secret.New(b), false, fmt.Errorf("admin token file %s is readable by others (mode %v): chmod 600 it", path, st.Mode().Perm())
		}
		return secret.New(b), false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return secret.String{}, false, fmt.Errorf("read admin token: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return secret.String{}, false, fmt.Errorf("create directory for admin token: %w", err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return secret.String{}, false, err
	}
	tok := []byte(hex.EncodeToString(raw))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return secret.String{}, false, fmt.Errorf("create admin token file: %w", err)
	}
	if _, err := f.Write(append(tok, '\n')); err != nil {
		f.Close()
		return secret.String{}, false, fmt.Errorf("write admin token file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return secret.String{}, false, err
	}
	return secret.New(tok), true, f.Close()
}
