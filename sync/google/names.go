package google

import (
	"strings"
	"unicode"

	gsync "github.com/gatewayd/gatewayd/sync"
)

// maxNameRunes is Google's limit for givenName and familyName.
const maxNameRunes = 60

// userNames returns the givenName and familyName Google requires, both
// non-empty: the account's first and last name; a missing one is taken
// from the display name (first words / last word) when it has two words
// or more, else from the username (mail nickname, or the UPN's local
// part), which also stands in for both when nothing else is known.
func userNames(a gsync.Account) (given, family string) {
	given, family = cleanName(a.GivenName), cleanName(a.Surname)
	if given != "" && family != "" {
		return truncRunes(given, maxNameRunes), truncRunes(family, maxNameRunes)
	}
	words := strings.Fields(cleanName(a.DisplayName))
	user := cleanName(a.MailNickname)
	if user == "" {
		user = cleanName(localPart(a.UPN))
	}
	if user == "" {
		user = "user"
	}
	switch {
	case given == "" && family == "" && len(words) >= 2:
		given, family = strings.Join(words[:len(words)-1], " "), words[len(words)-1]
	case given == "" && family == "" && len(words) == 1:
		given, family = words[0], words[0]
	case given == "" && family == "":
		given, family = user, user
	case given == "" && len(words) >= 2 && !strings.EqualFold(words[0], family):
		given = words[0]
	case given == "":
		given = user
	case len(words) >= 2 && !strings.EqualFold(words[len(words)-1], given):
		family = words[len(words)-1]
	default:
		family = user
	}
	return truncRunes(given, maxNameRunes), truncRunes(family, maxNameRunes)
}

// cleanName drops control characters and collapses spaces.
func cleanName(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

func truncRunes(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return strings.TrimSpace(string(r[:n]))
}

func localPart(upn string) string {
	if i := strings.LastIndexByte(upn, '@'); i >= 0 {
		return upn[:i]
	}
	return upn
}
