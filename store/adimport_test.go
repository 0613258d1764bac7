package store

import "testing"

// TestADImportStateDurable: the import's state survives a reopen, passes
// Verify, and is replaced whole.
func TestADImportStateDurable(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir, Options{})
	if _, err := s.ADImportStateOf("corp"); err == nil {
		t.Fatal("want not found")
	}
	if _, err := s.PutADImportState(&ADImportState{Domain: "corp", DC: "dc1", HighUSN: 4015, Groups: map[string]string{"g": "id1"}, LastRun: []byte(`{"outcome":"success"}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutADImportState(&ADImportState{Domain: ""}); err == nil {
		t.Fatal("a state without a domain must be refused")
	}
	if err := s.Verify(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openAt(t, dir, Options{})
	defer s.Close()
	a, err := s.ADImportStateOf("corp")
	if err != nil || a.DC != "dc1" || a.HighUSN != 4015 || a.Groups["g"] != "id1" || string(a.LastRun) != `{"outcome":"success"}` {
		t.Fatalf("%+v %v", a, err)
	}
	if err := s.Verify(); err != nil {
		t.Fatal(err)
	}
}
