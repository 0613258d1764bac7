package portal

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// logo is the [portal] logo_file, read once at start and served from
// memory under a name that carries its hash, so browsers may cache it
// for good.
type logo struct {
	data  []byte
	ctype string
	path  string // the URL path, /brand/logo-<hash>.<ext>
}

// readLogo reads and checks a logo file: a regular file of at most
// MaxLogoBytes whose content is a PNG, a JPEG or (named *.svg) an SVG
// document. The content decides the type, not the name.
func readLogo(name string) (*logo, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("cannot read the logo: %v", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("cannot read the logo: %v", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", name)
	}
	if fi.Size() > MaxLogoBytes {
		return nil, fmt.Errorf("%s is %d bytes; a logo may have at most %d (256 KiB)", name, fi.Size(), MaxLogoBytes)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxLogoBytes+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read the logo: %v", err)
	}
	if len(data) > MaxLogoBytes {
		return nil, fmt.Errorf("%s has more than %d bytes (256 KiB)", name, MaxLogoBytes)
	}
	if len(data) == 0 {
		return nil, fmt.Errorf("%s is empty", name)
	}
	var ctype, ext string
	switch sniffed := http.DetectContentType(data); {
	case sniffed == "image/png":
		ctype, ext = "image/png", "png"
	case sniffed == "image/jpeg":
		ctype, ext = "image/jpeg", "jpg"
	case isSVG(name, data):
		ctype, ext = "image/svg+xml", "svg"
	default:
		return nil, fmt.Errorf("%s is not a PNG, JPEG or SVG image (its content looks like %s)", name, sniffed)
	}
	h := sha256.Sum256(data)
	return &logo{data: data, ctype: ctype, path: "/brand/logo-" + hex.EncodeToString(h[:6]) + "." + ext}, nil
}

// isSVG: a file named *.svg holding UTF-8 text whose first element is
// <svg (after an optional XML declaration, comments and a doctype).
func isSVG(name string, data []byte) bool {
	if !strings.EqualFold(filepath.Ext(name), ".svg") || !utf8.Valid(data) {
		return false
	}
	rest := bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	for {
		rest = bytes.TrimLeft(rest, " \t\r\n")
		switch {
		case bytes.HasPrefix(rest, []byte("<?")):
			i := bytes.Index(rest, []byte("?>"))
			if i < 0 {
				return false
			}
			rest = rest[i+2:]
		case bytes.HasPrefix(rest, []byte("<!--")):
			i := bytes.Index(rest, []byte("-->"))
			if i < 0 {
				return false
			}
			rest = rest[i+3:]
		case bytes.HasPrefix(rest, []byte("<!")):
			i := bytes.IndexByte(rest, '>')
			if i < 0 {
				return false
			}
			rest = rest[i+1:]
		default:
			return bytes.HasPrefix(rest, []byte("<svg")) && len(rest) > 4 && strings.ContainsRune(" \t\r\n>/", rune(rest[4]))
		}
	}
}

// logoCSP: a logo opened on its own runs nothing (an SVG may hold script).
const logoCSP = "default-src 'none'; sandbox"

// serveLogo serves the logo under its hashed name, cacheable for a year.
func (s *Server) serveLogo(w http.ResponseWriter, r *http.Request) {
	if s.logo == nil || r.URL.Path != s.logo.path {
		s.render(w, r, http.StatusNotFound, "error", page{Title: "Not found", Error: "There is no such page."}, "")
		return
	}
	h := w.Header()
	h.Set("Content-Type", s.logo.ctype)
	h.Set("Content-Security-Policy", logoCSP)
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	h.Set("Content-Length", fmt.Sprint(len(s.logo.data)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(s.logo.data)
	}
}
