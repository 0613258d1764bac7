package sha512crypt

import (
	"strings"
	"testing"
)

// The reference vectors of Drepper's "Unix crypt using SHA-256 and
// SHA-512" for SHA-512 (checked against glibc's crypt(3) as well; the
// last one, rounds=10 clamped to 1000, is the specification's).
var vectors = []struct {
	name, setting, password, want string
}{
	{"default rounds", "$6$saltstring", "Hello world!",
		"$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"},
	{"rounds=10000, salt truncated to 16", "$6$rounds=10000$saltstringsaltstring", "Hello world!",
		"$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v."},
	{"explicit rounds=5000 is kept", "$6$rounds=5000$toolongsaltstring", "This is just a test",
		"$6$rounds=5000$toolongsaltstrin$lQ8jolhgVRVhY4b5pZKaysCLi0QBxGoNeKQzQ3glMhwllF7oGDZxUhx1yxdYcz/e1JSbq3y6JMxxl8audkUEm0"},
	{"password over 64 bytes", "$6$rounds=1400$anotherlongsaltstring",
		"a very much longer text to encrypt.  This one even stretches over morethan one line.",
		"$6$rounds=1400$anotherlongsalts$POfYwTEok97VWcjxIiSOjiykti.o/pQs.wPvMxQ6Fm7I6IoYN3CmLs66x9t0oSwbtEW7o7UmJEiDwGqd8p4ur1"},
	{"short salt, rounds=77777", "$6$rounds=77777$short", "we have a short salt string but not a short password",
		"$6$rounds=77777$short$WuQyW2YR.hBNpjjRhpYD/ifIw05xdfeEyQoMxIXbkvr0gge1a1x3yRULJ5CCaUeOxFmtlcGZelFl5CxtgfiAc0"},
	{"16-char salt, rounds=123456", "$6$rounds=123456$asaltof16chars..", "a short string",
		"$6$rounds=123456$asaltof16chars..$BtCwjqMJGx5hrJhZywWvt0RLE8uZ4oPwcelCjmw2kSYu.Ec6ycULevoBK25fs2xXgMNrCzIMVcgEJAstJeonj1"},
	{"rounds below minimum clamped", "$6$rounds=10$roundstoolow", "the minimum number is still observed",
		"$6$rounds=1000$roundstoolow$kUMsbe306n21p9R.FRkW3IGn.S9NPN0x50YhH1xhLsPuWGsUSklZt58jaTfF4ZEQpyUNGc0dqbpBYYBaHHrsX."},
	// From glibc's crypt(3), for the empty password.
	{"empty password", "$6$saltstring", "",
		"$6$saltstring$kyGrqt6gmjAdtFLPrflEFifSYLCWWq1pyx95SvqinLDy2UHmj0sTF0MSLMwxPFZc3tu5kQckI8fks0zOPda3n1"},
}

func TestVectors(t *testing.T) {
	for _, tc := range vectors {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Crypt([]byte(tc.password), tc.setting)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("Crypt(%q, %q)\n got %s\nwant %s", tc.password, tc.setting, got, tc.want)
			}
			// The full hash works as the setting, as with crypt(3).
			if again, _ := Crypt([]byte(tc.password), got); again != got {
				t.Fatalf("re-hash with the hash as setting: %s", again)
			}
			if err := Validate(tc.want); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if !Verify(tc.want, []byte(tc.password)) {
				t.Fatal("Verify rejects the right password")
			}
			if Verify(tc.want, []byte(tc.password+"x")) {
				t.Fatal("Verify accepts a wrong password")
			}
		})
	}
}

func TestHash(t *testing.T) {
	pw := []byte("Correct-Horse-42")
	seen := map[string]bool{}
	for range 5 {
		h, err := Hash(pw)
		if err != nil {
			t.Fatal(err)
		}
		if err := Validate(h); err != nil {
			t.Fatalf("%s: %v", h, err)
		}
		salt, _, _ := strings.Cut(strings.TrimPrefix(h, Prefix), "$")
		if len(salt) != SaltLen || !isCrypt64(salt) {
			t.Fatalf("salt %q: want 16 characters of the crypt alphabet", salt)
		}
		if strings.Contains(h, "rounds=") {
			t.Fatalf("%s: want the implicit default rounds", h)
		}
		if n, _ := Rounds(h); n != DefaultRounds {
			t.Fatalf("rounds %d", n)
		}
		if !Verify(h, pw) || Verify(h, []byte("correct-Horse-42")) {
			t.Fatal("verify")
		}
		if seen[salt] {
			t.Fatal("salt repeated")
		}
		seen[salt] = true
	}
}

func TestRounds(t *testing.T) {
	cases := []struct {
		setting string
		want    int
	}{
		{"$6$salt", DefaultRounds},
		{"$6$rounds=5000$salt", 5000},
		{"$6$rounds=20000$salt$hash", 20000},
		{"$6$rounds=10$salt", MinRounds},
		{"$6$rounds=99999999999$salt", MaxRounds},
	}
	for _, tc := range cases {
		if got, err := Rounds(tc.setting); err != nil || got != tc.want {
			t.Errorf("Rounds(%q) = %d, %v; want %d", tc.setting, got, err, tc.want)
		}
	}
	for _, bad := range []string{"$5$salt", "$6$rounds=abc$salt", "$6$rounds=$salt", "$6$rounds=12"} {
		if _, err := Rounds(bad); err == nil {
			t.Errorf("Rounds(%q) accepted", bad)
		}
	}
}

func TestValidate(t *testing.T) {
	good := vectors[0].want
	cases := []struct {
		name, hash string
	}{
		{"not $6$", "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZF4qP0T7/"},
		{"md5", "$1$saltstri$YMyguxXMBpd2TEZ.vS/3q1"},
		{"plaintext", "Hello world!"},
		{"no hash", "$6$saltstring"},
		{"short hash", good[:len(good)-1]},
		{"bad character", strings.Replace(good, "svn8", "sv*8", 1)},
		{"empty salt", "$6$$" + good[len("$6$saltstring$"):]},
		{"rounds not canonical", strings.Replace(vectors[6].want, "rounds=1000", "rounds=0100", 1)},
		{"rounds out of range", strings.Replace(vectors[6].want, "rounds=1000", "rounds=10", 1)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if Validate(tc.hash) == nil {
				t.Fatalf("%q accepted", tc.hash)
			}
			if Verify(tc.hash, []byte("Hello world!")) {
				t.Fatal("verified")
			}
		})
	}
	for _, setting := range []string{"$6$rounds=abc$salt", "$6$sa:lt", "$6$sa\nlt", "$5$salt"} {
		if _, err := Crypt([]byte("x"), setting); err == nil {
			t.Errorf("Crypt with setting %q accepted", setting)
		}
	}
}
