// Package sync is the takeover and provisioning engine: it reacts to store
// changes and verified logins and drives each bound directory's connector.
package sync

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gatewayd/gatewayd/secret"
)

// Connector is one cloud directory (Entra ID, Google Workspace). It knows
// nothing of LDAP, RADIUS or the store: it speaks its directory's API.
// Every method after lookup takes the remote object id (SPEC 4.1).
type Connector interface {
	// LookupUser finds an account by principal name; ErrNotFound if none.
	LookupUser(ctx context.Context, upn string) (*RemoteUser, error)
	// GetUser reads an account by id; ErrNotFound if none.
	GetUser(ctx context.Context, id string) (*RemoteUser, error)
	// CreateUser creates an account. It must be safe to retry after a
	// crash: the engine looks the UPN up before creating again.
	CreateUser(ctx context.Context, a Account, pw secret.String) (*RemoteUser, error)
	// UpdateUser pushes the names and mapped attributes.
	//
	// CreateUser and UpdateUser apply what the directory accepts: when it
	// refuses some attributes, they retry without them (a bounded number
	// of calls), apply the rest and return *AttributesRefused naming the
	// refused ones (CreateUser with the created account). A refused
	// attribute never fails the account.
	UpdateUser(ctx context.Context, id string, a Account) error
	// SetEnabled blocks or unblocks sign-in. Never deletes.
	SetEnabled(ctx context.Context, id string, enabled bool) error
	// SetPassword pushes a password; it returns the remote's password
	// change time when the directory reports one (zero otherwise).
	SetPassword(ctx context.Context, id string, pw secret.String) (time.Time, error)
}

// RemoteUser is what a directory says about one account.
type RemoteUser struct {
	ID      string
	UPN     string
	Enabled bool
	// LastPasswordChange is Entra's lastPasswordChangeDateTime (SPEC 3.3);
	// zero when the directory does not report it.
	LastPasswordChange time.Time
}

// Account is the gateway's view of a user as a directory should see it.
type Account struct {
	UPN          string
	MailNickname string
	DisplayName  string
	GivenName    string
	Surname      string
	Enabled      bool
	// Attributes are the mapped attributes that have a value, by remote
	// property (Graph "jobTitle", Google "organizations.title"), after the
	// directory's mapping (SPEC 4.2): gateway-only attributes never
	// appear. A connector sends each in its wire shape; one it cannot
	// send is refused (AttributesRefused), not an error. An empty value,
	// should one come, clears the property on update.
	Attributes map[string]string
	// Clear lists remote properties the gateway set before that have no
	// value now: UpdateUser clears them; CreateUser ignores them.
	Clear []string
	// ManagerID is the manager's account id in this directory and
	// ManagerUPN its principal name (Google's relations value); both
	// empty when there is no manager to set.
	ManagerID  string
	ManagerUPN string
	// ClearManager: no manager now, and the gateway set one before:
	// UpdateUser removes the reference.
	ClearManager bool
}

// ErrNotFound: the remote object does not exist (or not yet: replication).
var ErrNotFound = errors.New("remote object not found")

// Error classifies a remote failure so the engine knows whether to retry.
type Error struct {
	// Permanent failures are not retried (400 complexity, 403
	// on-premises mastered, missing permission).
	Permanent bool
	// RetryAfter is the server's Retry-After, when it sent one.
	RetryAfter time.Duration
	Status     int
	Code       string // the directory's error code
	Message    string // actionable text for the admin
}

func (e *Error) Error() string {
	kind := "transient"
	if e.Permanent {
		kind = "permanent"
	}
	if e.Code != "" {
		return fmt.Sprintf("%s error (HTTP %d %s): %s", kind, e.Status, e.Code, e.Message)
	}
	return fmt.Sprintf("%s error (HTTP %d): %s", kind, e.Status, e.Message)
}

// IsPermanent reports whether err must not be retried.
func IsPermanent(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Permanent
}

// RetryAfter extracts a server-requested delay, if any.
func RetryAfter(err error) (time.Duration, bool) {
	var e *Error
	if errors.As(err, &e) && e.RetryAfter > 0 {
		return e.RetryAfter, true
	}
	return 0, false
}

// ParseRetryAfter reads an HTTP Retry-After header (delay-seconds or an
// HTTP date); 0 when absent or unusable. Capped at a day so a broken
// header cannot park a job for ever.
func ParseRetryAfter(h http.Header) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(min(n, int64(24*time.Hour/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return min(d, 24*time.Hour)
		}
	}
	return 0
}

// PrincipalNamer is implemented by a connector whose principal names do
// not come from the user's email (SPEC 5.2): Active Directory names an
// account by the gateway username (sAMAccountName, UPN username@realm).
// An error skips the user, with the reason on the binding.
type PrincipalNamer interface {
	PrincipalName(username, email string) (string, error)
}

// PasswordFilter is implemented by a connector that takes the passwords
// of some users only: the AD write-back never pushes the password of a
// user whose password authority is "ad" (AD owns it; pushing it back
// would loop with the import).
type PasswordFilter interface {
	TakesPasswordOf(passwordAuthority string) bool
}
