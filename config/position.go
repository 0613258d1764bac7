package config

import (
	"strconv"
	"strings"
)

// positions maps key paths to the line they are defined on. BurntSushi/toml
// keeps its key positions private, and an administrator needs "file:line"
// for semantic errors (a bad CIDR, a missing secret file), not just syntax
// ones, so we index the text ourselves. Paths look like "radius.listen",
// "radius.client[1].networks" and, for the first of an array of tables,
// also "radius.client.networks".
type positions map[string]int

func locate(text string) positions {
	p := positions{}
	counts := map[string]int{}
	table := ""
	for i, raw := range strings.Split(text, "\n") {
		line := strings.TrimSpace(stripComment(raw))
		n := i + 1
		switch {
		case line == "":
		case strings.HasPrefix(line, "[["):
			name := strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(line, "[["), "]]"))
			idx := counts[name]
			counts[name]++
			table = name + "[" + strconv.Itoa(idx) + "]"
			p.set(table, n)
			p.setFirst(name, n)
		case strings.HasPrefix(line, "["):
			name := strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(line, "["), "]"))
			table = resolveParent(name, counts)
			p.set(table, n)
			p.setFirst(name, n)
		default:
			eq := strings.IndexByte(line, '=')
			if eq <= 0 {
				continue
			}
			key := strings.Trim(strings.TrimSpace(line[:eq]), `"'`)
			full := key
			if table != "" {
				full = table + "." + key
			}
			p.set(full, n)
			p.setFirst(stripIndexes(full), n)
		}
	}
	return p
}

// resolveParent turns "radius.client.x" inside the latest [[radius.client]]
// into "radius.client[N].x".
func resolveParent(name string, counts map[string]int) string {
	parts := strings.Split(name, ".")
	for i := len(parts) - 1; i > 0; i-- {
		parent := strings.Join(parts[:i], ".")
		if c, ok := counts[parent]; ok {
			return parent + "[" + strconv.Itoa(c-1) + "]." + strings.Join(parts[i:], ".")
		}
	}
	return name
}

func (p positions) set(k string, n int) { p[k] = n }

func (p positions) setFirst(k string, n int) {
	if _, ok := p[k]; !ok {
		p[k] = n
	}
}

// line finds the most specific known line for path, walking up to the
// enclosing table when the key itself is absent (a default was used).
func (p positions) line(path string) int {
	for path != "" {
		if n, ok := p[path]; ok {
			return n
		}
		if n, ok := p[stripIndexes(path)]; ok && !strings.Contains(path, "[") {
			return n
		}
		cut := strings.LastIndexByte(path, '.')
		if cut < 0 {
			break
		}
		path = path[:cut]
	}
	return 0
}

func stripIndexes(s string) string {
	var b strings.Builder
	depth := 0
	for _, r := range s {
		switch {
		case r == '[':
			depth++
		case r == ']':
			depth--
		case depth == 0:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// stripComment drops a trailing # comment that is not inside a string.
func stripComment(s string) string {
	inStr := byte(0)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case inStr != 0:
			if c == '\\' && inStr == '"' {
				i++
			} else if c == inStr {
				inStr = 0
			}
		case c == '"' || c == '\'':
			inStr = c
		case c == '#':
			return s[:i]
		}
	}
	return s
}
