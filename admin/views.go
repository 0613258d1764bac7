package admin

import (
	"time"

	"github.com/gatewayd/gatewayd/store"
)

// userView is the API's rendering of a user. It is built field by field
// so that nothing is exposed by accident: the password hash has no field.
type userView struct {
	ID                 string            `json:"id"`
	Username           string            `json:"username"`
	Email              string            `json:"email"`
	FirstName          string            `json:"first_name,omitempty"`
	LastName           string            `json:"last_name,omitempty"`
	DisplayName        string            `json:"display_name,omitempty"`
	Attributes         map[string]string `json:"attributes,omitempty"`
	State              store.State       `json:"state"`
	PasswordStatus     string            `json:"password_status"`
	PasswordAuthority  string            `json:"password_authority"`
	DelegatedAuthority string            `json:"delegated_authority"`
	PasswordVersion    uint64            `json:"password_version"`
	PasswordChangedAt  *time.Time        `json:"password_changed_at,omitempty"`
	// PasswordExpiresAt is when the password expires under [authn]
	// max_password_age (absent: it does not).
	PasswordExpiresAt *time.Time `json:"password_expires_at,omitempty"`
	LockedUntil       *time.Time `json:"locked_until,omitempty"`
	ServiceAccount    bool       `json:"service_account"`
	PasswordResetter  bool       `json:"password_resetter"`
	UIDNumber         int        `json:"uid_number"`
	CreatedAt         time.Time  `json:"created_at"`
	UpdatedAt         time.Time  `json:"updated_at"`
	LastLoginAt       *time.Time `json:"last_login_at,omitempty"`
	// LastADValidationAt: the last login AD confirmed (delegated users).
	LastADValidationAt *time.Time `json:"last_ad_validation_at,omitempty"`
}

// viewUser renders u as of now.
func (s *Server) viewUser(u *store.User, now time.Time) userView {
	v := viewUserAt(u, now)
	v.PasswordExpiresAt = timePtr(s.pw.PasswordExpiresAt(u))
	return v
}

func viewUserAt(u *store.User, now time.Time) userView {
	v := userView{
		ID: u.ID, Username: u.Username, Email: u.Email, FirstName: u.FirstName, LastName: u.LastName,
		DisplayName: u.DisplayName, Attributes: u.Attributes, State: u.State,
		PasswordStatus:    string(u.EffectivePasswordStatus(now)),
		PasswordAuthority: u.PasswordAuthority, DelegatedAuthority: u.DelegatedAuthority,
		PasswordVersion: u.PasswordVersion, ServiceAccount: u.ServiceAccount, PasswordResetter: u.PasswordResetter,
		UIDNumber: u.UIDNumber, CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt,
		PasswordChangedAt: timePtr(u.PasswordChangedAt), LastLoginAt: timePtr(u.LastLoginAt),
		LastADValidationAt: timePtr(u.LastADValidationAt),
	}
	if u.Locked(now) {
		v.LockedUntil = timePtr(u.LockedUntil)
	}
	return v
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

type groupView struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Description string    `json:"description,omitempty"`
	GIDNumber   int       `json:"gid_number"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
	Members     []string  `json:"members,omitempty"` // usernames, on GET of one group
}

func viewGroup(g *store.Group) groupView {
	return groupView{ID: g.ID, Name: g.Name, Description: g.Description, GIDNumber: g.GIDNumber, CreatedAt: g.CreatedAt, UpdatedAt: g.UpdatedAt}
}
