package secret

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestNeverPrints(t *testing.T) {
	s := FromString("hunter2-plaintext")
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
		out := fmt.Sprintf(verb, s)
		if strings.Contains(out, "hunter2") || strings.Contains(out, fmt.Sprintf("%x", "hunter2")) {
			t.Errorf("%s leaked: %q", verb, out)
		}
	}
	wrapped := struct{ P String }{s}
	if out := fmt.Sprintf("%+v", wrapped); strings.Contains(out, "hunter2") {
		t.Errorf("struct print leaked: %q", out)
	}
	if _, err := json.Marshal(wrapped); err == nil {
		t.Error("json.Marshal succeeded; a secret must have no JSON form")
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "password", s, "obj", wrapped)
	if strings.Contains(buf.String(), "hunter2") {
		t.Errorf("slog leaked: %s", buf.String())
	}
}

func TestWipeAndClone(t *testing.T) {
	s := FromString("abc")
	c := s.Clone()
	s.Wipe()
	if !bytes.Equal(s.Bytes(), []byte{0, 0, 0}) {
		t.Fatalf("wipe left %v", s.Bytes())
	}
	if string(c.Bytes()) != "abc" {
		t.Fatalf("clone shares memory with original")
	}
	if !c.Equal(FromString("abc")) || c.Equal(FromString("abd")) {
		t.Fatal("Equal is wrong")
	}
	var zero String
	if !zero.IsEmpty() || zero.Clone().Len() != 0 {
		t.Fatal("zero value not empty")
	}
}
