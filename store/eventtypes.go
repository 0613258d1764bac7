package store

import "strings"

// EventType names what an audit event records (SPEC 7). Every type the
// daemon emits is declared here, so the set an operator can filter on is
// in one place; it is stored and served as a plain string.
type EventType string

// Logins through a front door. They carry Outcome, and Reason on failure.
const (
	// EventLDAPBind is a simple bind on the LDAP door.
	EventLDAPBind EventType = "ldap_bind"
	// EventRADIUSAuth is an Access-Request on the RADIUS door.
	EventRADIUSAuth EventType = "radius_auth"
	// EventAdminLogin is a password check made for the admin door.
	EventAdminLogin EventType = "admin_login"
	// EventPortalLogin is a sign-in on the self-service page.
	EventPortalLogin EventType = "portal_login"
)

// Self-service page (portal) events besides the sign-in.
const (
	// EventUserInvite is an activation link issued for a user.
	EventUserInvite EventType = "user_invite"
)

// Password and lockout changes made by the authenticator.
const (
	// EventPasswordChange is a new password stored for a user: set by an
	// admin or the user, or learnt from Active Directory at a login.
	EventPasswordChange EventType = "password_change"
	// EventUserLocked is a lockout after too many failed logins.
	EventUserLocked EventType = "user_locked"
)

// Changes to users made through the admin API. They carry the user.
const (
	// EventUserCreate is a user created.
	EventUserCreate EventType = "user_create"
	// EventUserUpdate is a user's attributes changed.
	EventUserUpdate EventType = "user_update"
	// EventUserDelete is a user deleted.
	EventUserDelete EventType = "user_delete"
	// EventUserSuspend is a user suspended (no logins).
	EventUserSuspend EventType = "user_suspend"
	// EventUserUnsuspend is a suspended user made active again.
	EventUserUnsuspend EventType = "user_unsuspend"
	// EventUserUnlock is a lockout lifted by an admin.
	EventUserUnlock EventType = "user_unlock"
	// EventUserImport is a user created from an account of the
	// directory named by Directory (SPEC 4.7).
	EventUserImport EventType = "user_import"
	// EventUserBind is a user bound to a directory directly.
	EventUserBind EventType = "user_bind"
	// EventUserUnbind is a user's direct binding removed.
	EventUserUnbind EventType = "user_unbind"
)

// Changes to groups made through the admin API. They carry the group
// (GroupID and Group); member changes carry the user as well.
const (
	// EventGroupCreate is a group created.
	EventGroupCreate EventType = "group_create"
	// EventGroupDelete is a group deleted.
	EventGroupDelete EventType = "group_delete"
	// EventGroupMemberAdd is a user added to a group.
	EventGroupMemberAdd EventType = "group_member_add"
	// EventGroupMemberRemove is a user removed from a group.
	EventGroupMemberRemove EventType = "group_member_remove"
	// EventGroupBind is a group bound to a directory.
	EventGroupBind EventType = "group_bind"
	// EventGroupUnbind is a group's binding removed.
	EventGroupUnbind EventType = "group_unbind"
)

// Provisioning to a directory by the sync engine (SPEC 4). They carry
// Directory, and the user or the group. Each has a failed variant (see
// Failed) whose Detail is the directory's error.
const (
	// EventUserCreateProvision is an account created, or an existing one
	// taken over, in a directory.
	EventUserCreateProvision EventType = "user_create_provision"
	// EventUserUpdateProvision is an account's attributes or sign-in
	// state changed in a directory.
	EventUserUpdateProvision EventType = "user_update_provision"
	// EventUserPasswordUpdateProvision is a password pushed to a directory.
	EventUserPasswordUpdateProvision EventType = "user_password_update_provision"
	// EventUserDeprovision is an account's sign-in blocked in a directory.
	EventUserDeprovision EventType = "user_deprovision"
	// EventGroupCreateProvision is a group created in a directory.
	EventGroupCreateProvision EventType = "group_create_provision"
	// EventGroupUpdateProvision is a group taken over, or its members
	// changed, in a directory.
	EventGroupUpdateProvision EventType = "group_update_provision"

	// EventUserCreateProvisionFailed is EventUserCreateProvision failed.
	EventUserCreateProvisionFailed = EventUserCreateProvision + failedSuffix
	// EventUserUpdateProvisionFailed is EventUserUpdateProvision failed.
	EventUserUpdateProvisionFailed = EventUserUpdateProvision + failedSuffix
	// EventUserPasswordUpdateProvisionFailed is
	// EventUserPasswordUpdateProvision failed, or a password the
	// directory's policy refuses and that was not sent.
	EventUserPasswordUpdateProvisionFailed = EventUserPasswordUpdateProvision + failedSuffix
	// EventUserDeprovisionFailed is EventUserDeprovision failed.
	EventUserDeprovisionFailed = EventUserDeprovision + failedSuffix
	// EventGroupCreateProvisionFailed is EventGroupCreateProvision failed.
	EventGroupCreateProvisionFailed = EventGroupCreateProvision + failedSuffix
	// EventGroupUpdateProvisionFailed is EventGroupUpdateProvision failed.
	EventGroupUpdateProvisionFailed = EventGroupUpdateProvision + failedSuffix
)

// Directories forgotten on purpose (SPEC 4.5). They carry Directory.
const (
	// EventDirectoryForget is a directory's bindings and sync state
	// dropped by `gatewayd directory forget`; its remote accounts are left
	// as they are.
	EventDirectoryForget EventType = "directory_forget"
	// EventDirectoryPause and EventDirectoryResume: `gatewayd directory
	// pause|resume` or `gatewayd ad pause|resume` (SPEC 6.6); Directory is
	// the directory, or the [[ad]] name for a domain.
	EventDirectoryPause  EventType = "directory_pause"
	EventDirectoryResume EventType = "directory_resume"
)

// Active Directory import (SPEC 6.2-6.4). They carry Directory = the
// [[ad]] name and Source "ad_import"; the users and groups it changes get
// the admin event types above (user_import, user_update, user_suspend,
// user_unsuspend, user_delete, group_create, group_member_add, ...).
const (
	// EventADImport is one import cycle, with its counts in Detail.
	// Outcome failure with a Reason: the cycle failed, or the safety stop
	// held it back (reason safety_stop).
	EventADImport EventType = "ad_import"
)

// failedSuffix marks the failed variant of a provisioning event type.
const failedSuffix = "_failed"

// Failed returns the variant of t that records its failure, e.g.
// user_create_provision_failed for EventUserCreateProvision. It is t
// itself when t already is one.
func (t EventType) Failed() EventType {
	if t.IsFailed() {
		return t
	}
	return t + failedSuffix
}

// IsFailed reports whether t is the failed variant of an event type.
func (t EventType) IsFailed() bool { return strings.HasSuffix(string(t), failedSuffix) }
