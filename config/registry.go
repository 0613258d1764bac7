package config

import (
	"fmt"
	"sort"
	"sync"
)

// DirectoryBlock is the config struct of one directory type, decoded from
// a [[directory]] block whose type names it. The root struct holds the
// blocks as a []DirectoryBlock; the daemon asks each for what it builds
// (a connector) through an interface of the consuming package.
type DirectoryBlock interface {
	Defaulter
	Validator
}

var registry = struct {
	sync.RWMutex
	types map[string]func() DirectoryBlock
}{types: map[string]func() DirectoryBlock{}}

// RegisterDirectoryType makes `type = name` in a [[directory]] block decode
// into the block newBlock returns. A connector package calls it from init,
// so adding a directory type is a change to that one package (and the
// import that links it in). Registering a name twice panics: it is a
// programming error found at start.
func RegisterDirectoryType(name string, newBlock func() DirectoryBlock) {
	registry.Lock()
	defer registry.Unlock()
	if _, dup := registry.types[name]; dup {
		panic(fmt.Sprintf("config: directory type %q registered twice", name))
	}
	registry.types[name] = newBlock
}

// DirectoryTypes lists the registered type names, sorted.
func DirectoryTypes() []string {
	registry.RLock()
	defer registry.RUnlock()
	out := make([]string, 0, len(registry.types))
	for n := range registry.types {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// NewDirectoryBlock returns a new, not yet defaulted, block of type name,
// or nil when no such type is registered.
func NewDirectoryBlock(name string) DirectoryBlock {
	registry.RLock()
	defer registry.RUnlock()
	if f := registry.types[name]; f != nil {
		return f()
	}
	return nil
}
