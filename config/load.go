package config

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// Options adjust Load and Parse.
type Options struct {
	// Only, when set, limits secret resolution and validation to these
	// top-level keys ("admin", "data_dir"), and skips the root's own
	// Validate. The file is still decoded whole, so unknown keys and type
	// errors are still reported. The admin CLI uses it: it needs the admin
	// address and token, not the RADIUS secrets or the LDAP key file.
	Only []string
}

// Load reads the file at path and decodes it over root; see Parse.
func Load(path string, root any, opts Options) (*Source, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, Problems{{File: path, Msg: fmt.Sprintf("cannot read config: %v", err)}}
	}
	return Parse(path, b, root, opts)
}

// Source is where a loaded config came from: it places problems found
// later (a port that is taken at start) at their key's line.
type Source struct {
	// Name is the file's path ("(embedded gatewayd.toml.example)" for the
	// default).
	Name string
	pos  positions
}

// Line is the line of a key path ("radius.client[1].secret"), or of the
// nearest enclosing table the file has; 0 when neither is in the file.
func (s *Source) Line(path string) int { return s.pos.line(path) }

// Errorf builds a Problem at the line of path; the message is prefixed
// with the key like those of Parse.
func (s *Source) Errorf(path, format string, args ...any) Problem {
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = path + ": " + msg
	}
	return Problem{File: s.Name, Line: s.pos.line(path), Key: path, Msg: msg}
}

// Parse decodes text, read from name, over root, a pointer to a struct
// whose TOML-tagged fields are the blocks. In order it:
//   - calls Defaults on every field (and on root) that has one;
//   - decodes the file over them; each element of an array of tables is
//     defaulted before it is decoded, and a []DirectoryBlock field is
//     filled by type from the registry;
//   - reports unknown keys;
//   - resolves every Secret;
//   - calls Validate on each element of an array of tables, on each
//     top-level field, then on root (for checks across blocks).
//
// All problems are returned together as Problems, in file order, each at
// the line of the key it concerns.
func Parse(name string, text []byte, root any, opts Options) (*Source, error) {
	rv := reflect.ValueOf(root)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		panic("config: Parse needs a pointer to a struct")
	}
	src := &Source{Name: name, pos: locate(string(text))}
	l := &loader{file: name, pos: src.pos}
	fields := structFields(rv.Elem())
	top := primitivesOf(fields)
	md, err := toml.NewDecoder(bytes.NewReader(text)).Decode(top.Interface())
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, Problems{{File: name, Line: pe.Position.Line, Msg: pe.Message}}
		}
		return nil, Problems{{File: name, Line: lineOfDecodeError(err), Msg: strings.TrimPrefix(err.Error(), "toml: ")}}
	}
	l.md = &md

	if d, ok := root.(Defaulter); ok {
		d.Defaults()
	}
	for _, f := range fields {
		callDefaults(f.v)
	}
	for i, f := range fields {
		if pv := top.Elem().Field(i); !pv.IsZero() {
			l.decodeValue(pv.Interface().(toml.Primitive), f.v, f.key)
		}
	}
	for _, k := range md.Undecoded() {
		path := k.String()
		if l.skipUndecoded(path) {
			continue
		}
		l.add(Problem{Key: path, Line: l.pos.line(path),
			Msg: fmt.Sprintf("unknown key %q (see gatewayd.toml.example for every option)", path)})
	}
	if len(l.ps) == 0 {
		only := map[string]bool{}
		for _, k := range opts.Only {
			only[k] = true
		}
		for _, f := range fields {
			if len(only) > 0 && !only[f.key] {
				continue
			}
			l.resolveSecrets(f.v, f.key)
			l.validate(f.v, f.key, true)
		}
		if v, ok := root.(Validator); ok && len(only) == 0 {
			l.report("", v.Validate())
		}
	}
	if len(l.ps) > 0 {
		sort.SliceStable(l.ps, func(i, j int) bool { return l.ps[i].Line < l.ps[j].Line })
		return nil, l.ps
	}
	return src, nil
}

type loader struct {
	file string
	pos  positions
	md   *toml.MetaData
	ps   Problems
	// skip are tables that could not be decoded (an unknown directory
	// type, a value of the wrong type): their other keys are left
	// undecoded, and reporting each as unknown would bury the real problem.
	skip []string
}

func (l *loader) add(p Problem) {
	p.File = l.file
	if p.Key != "" && p.Line == 0 {
		p.Line = l.pos.line(p.Key)
	}
	l.ps = append(l.ps, p)
}

// report turns a block's error into problems at the keys it names,
// relative to path.
func (l *loader) report(path string, err error) {
	for _, e := range flatten(err) {
		key, msg := path, e.Error()
		var fe *FieldError
		if errors.As(e, &fe) {
			key, msg = joinKey(path, fe.Key), fe.Msg
		}
		if key != "" {
			msg = key + ": " + msg
		}
		l.add(Problem{Key: key, Msg: msg})
	}
}

// decodeErr reports a decoding error (a wrong type, a value its type's
// parser refuses) inside the table at path. BurntSushi names the key
// without array indexes, so the key is rebuilt under path, which has them.
func (l *loader) decodeErr(path string, err error) {
	msg, line := strings.TrimPrefix(err.Error(), "toml: "), lineOfDecodeError(err)
	lastKey := ""
	var pe toml.ParseError
	if errors.As(err, &pe) {
		msg, line, lastKey = pe.Message, pe.Position.Line, pe.LastKey
	} else if m := typeErrorShape.FindStringSubmatch(err.Error()); m != nil {
		lastKey, msg = m[1], m[2]
	}
	if tail, ok := strings.CutPrefix(lastKey, stripIndexes(path)+"."); ok {
		path = joinKey(path, tail)
		if n := l.pos.line(path); n > 0 {
			line = n
		}
	}
	if line == 0 {
		line = l.pos.line(path)
	}
	l.add(Problem{Key: path, Line: line, Msg: path + ": " + msg})
}

var (
	directoryBlockType = reflect.TypeFor[DirectoryBlock]()
	secretType         = reflect.TypeFor[Secret]()
	primitiveType      = reflect.TypeFor[toml.Primitive]()
)

// decodeValue decodes prim into v (addressable), with the array-of-tables
// and registry handling Parse describes.
func (l *loader) decodeValue(prim toml.Primitive, v reflect.Value, path string) {
	switch {
	case v.Kind() == reflect.Slice && v.Type().Elem() == directoryBlockType:
		var prims []toml.Primitive
		if err := l.md.PrimitiveDecode(prim, &prims); err != nil {
			l.decodeErr(path, err)
			return
		}
		out := reflect.MakeSlice(v.Type(), 0, len(prims))
		for i, p := range prims {
			at := path + "[" + strconv.Itoa(i) + "]"
			var head struct {
				Type string `toml:"type"`
			}
			if err := l.md.PrimitiveDecode(p, &head); err != nil {
				l.decodeErr(at, err)
				continue
			}
			blk := NewDirectoryBlock(head.Type)
			if blk == nil {
				l.skip = append(l.skip, at)
				var rest map[string]any
				_ = l.md.PrimitiveDecode(p, &rest) // its keys are not each "unknown"
				msg := fmt.Sprintf("directory #%d needs a type (one of: %s)", i+1, strings.Join(DirectoryTypes(), ", "))
				if head.Type != "" {
					msg = fmt.Sprintf("directory #%d: type %q is not supported (supported: %s)", i+1, head.Type, strings.Join(DirectoryTypes(), ", "))
				}
				l.add(Problem{Key: at + ".type", Msg: msg})
				continue
			}
			blk.Defaults()
			l.decodeStruct(p, reflect.ValueOf(blk), at)
			out = reflect.Append(out, reflect.ValueOf(blk))
		}
		v.Set(out)
	case isArrayOfTables(v.Type()):
		var prims []toml.Primitive
		if err := l.md.PrimitiveDecode(prim, &prims); err != nil {
			l.decodeErr(path, err)
			return
		}
		out := reflect.MakeSlice(v.Type(), len(prims), len(prims))
		for i, p := range prims {
			e := out.Index(i)
			callDefaults(e)
			l.decodeStruct(p, e.Addr(), path+"["+strconv.Itoa(i)+"]")
		}
		v.Set(out)
	case isStruct(v.Type()):
		l.decodeStruct(prim, v.Addr(), path)
	default:
		if err := l.md.PrimitiveDecode(prim, v.Addr().Interface()); err != nil {
			l.decodeErr(path, err)
		}
	}
}

// decodeStruct decodes a table over the struct ptr points at. Plain keys
// are decoded in place through a shadow struct of pointers; arrays of
// tables are held back as primitives and decoded element by element, so
// each element gets its defaults and its problems their index.
func (l *loader) decodeStruct(prim toml.Primitive, ptr reflect.Value, path string) {
	fields := structFields(ptr.Elem())
	sfs := make([]reflect.StructField, len(fields))
	for i, f := range fields {
		t := f.v.Addr().Type()
		if isArrayOfTables(f.v.Type()) {
			t = primitiveType
		}
		sfs[i] = reflect.StructField{Name: "F" + strconv.Itoa(i), Type: t, Tag: reflect.StructTag(`toml:"` + f.key + `"`)}
	}
	shadow := reflect.New(reflect.StructOf(sfs))
	for i, f := range fields {
		if !isArrayOfTables(f.v.Type()) {
			shadow.Elem().Field(i).Set(f.v.Addr())
		}
	}
	if err := l.md.PrimitiveDecode(prim, shadow.Interface()); err != nil {
		l.decodeErr(path, err)
		l.skip = append(l.skip, path)
		return
	}
	for i, f := range fields {
		if pv := shadow.Elem().Field(i); isArrayOfTables(f.v.Type()) && !pv.IsZero() {
			l.decodeValue(pv.Interface().(toml.Primitive), f.v, joinKey(path, f.key))
		}
	}
}

func isArrayOfTables(t reflect.Type) bool {
	return t.Kind() == reflect.Slice && !decodesItself(t) && (isStruct(t.Elem()) || t.Elem() == directoryBlockType)
}

var (
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	tomlUnmarshalerType = reflect.TypeFor[toml.Unmarshaler]()
)

// decodesItself reports a type that reads its own TOML value (a CIDR, a
// secret reference): it is a value, not a table.
func decodesItself(t reflect.Type) bool {
	p := reflect.PointerTo(t)
	return p.Implements(textUnmarshalerType) || p.Implements(tomlUnmarshalerType)
}

// primitivesOf returns a pointer to a new struct with one toml.Primitive
// field per field, under the same keys. Decoding a table into it marks
// only those keys: a map would mark every key as decoded and hide the
// unknown ones.
func primitivesOf(fields []field) reflect.Value {
	sfs := make([]reflect.StructField, len(fields))
	for i, f := range fields {
		sfs[i] = reflect.StructField{Name: "F" + strconv.Itoa(i), Type: primitiveType, Tag: reflect.StructTag(`toml:"` + f.key + `"`)}
	}
	return reflect.New(reflect.StructOf(sfs))
}

// resolveSecrets resolves every Secret under v.
func (l *loader) resolveSecrets(v reflect.Value, path string) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			l.resolveSecrets(v.Elem(), path)
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			l.resolveSecrets(v.Index(i), path+"["+strconv.Itoa(i)+"]")
		}
	case reflect.Struct:
		if v.Type() == secretType {
			if v.CanAddr() {
				if err := v.Addr().Interface().(*Secret).Resolve(); err != nil {
					l.report(path, err)
				}
			}
			return
		}
		for _, f := range structFields(v) {
			l.resolveSecrets(f.v, joinKey(path, f.key))
		}
	}
}

// validate calls Validate on v when top or when v is an element of an
// array of tables, after validating the elements of the arrays of tables
// it holds. Plain nested tables are their block's to check.
func (l *loader) validate(v reflect.Value, path string, top bool) {
	for v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return
		}
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.Slice:
		if isArrayOfTables(v.Type()) {
			for i := 0; i < v.Len(); i++ {
				l.validate(v.Index(i), path+"["+strconv.Itoa(i)+"]", true)
			}
		}
		return
	case reflect.Struct:
	default:
		return
	}
	for _, f := range structFields(v) {
		if f.v.Kind() == reflect.Slice {
			l.validate(f.v, joinKey(path, f.key), false)
		}
	}
	if !top || !v.CanAddr() {
		return
	}
	if val, ok := v.Addr().Interface().(Validator); ok {
		l.report(path, val.Validate())
	}
}

func (l *loader) skipUndecoded(path string) bool {
	for _, d := range l.skip {
		if strings.HasPrefix(path, stripIndexes(d)+".") {
			return true
		}
	}
	return false
}

// field is one TOML-visible field of a struct value, embedded structs
// flattened.
type field struct {
	key string
	v   reflect.Value
}

func structFields(v reflect.Value) []field {
	var out []field
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		tag := sf.Tag.Get("toml")
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if sf.Anonymous && name == "" && sf.Type.Kind() == reflect.Struct {
			out = append(out, structFields(v.Field(i))...)
			continue
		}
		if !sf.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(sf.Name)
		}
		out = append(out, field{key: name, v: v.Field(i)})
	}
	return out
}

// isStruct reports a struct decoded as a table.
func isStruct(t reflect.Type) bool {
	return t.Kind() == reflect.Struct && !decodesItself(t)
}

// callDefaults calls Defaults on v (addressable) when it has one.
func callDefaults(v reflect.Value) {
	if !v.CanAddr() {
		return
	}
	if d, ok := v.Addr().Interface().(Defaulter); ok {
		d.Defaults()
	}
}

// typeErrorShape is how BurntSushi words a value of the wrong type:
// "toml: line 2 (last key "events.retention"): incompatible types: ...".
var typeErrorShape = regexp.MustCompile(`^toml: (?:line \d+ )?\(last key "([^"]+)"\): (.*)$`)

func lineOfDecodeError(err error) int {
	var n int
	if _, scanErr := fmt.Sscanf(err.Error(), "toml: line %d", &n); scanErr == nil {
		return n
	}
	return 0
}
