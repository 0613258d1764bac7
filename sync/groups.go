package sync

import "context"

// GroupConnector is what a directory offers for security groups (SPEC 4.4).
// Connectors implement it alongside Connector.
type GroupConnector interface {
	// FindGroups returns every group whose display name is exactly name
	// (case-insensitively); none is an empty slice, not an error.
	FindGroups(ctx context.Context, name string) ([]RemoteGroup, error)
	// CreateGroup creates a security group (Entra: securityEnabled true,
	// mailEnabled false).
	CreateGroup(ctx context.Context, g GroupSpec) (*RemoteGroup, error)
	// AddMember is idempotent: an existing membership is not an error.
	AddMember(ctx context.Context, groupID, userID string) error
	// RemoveMember is idempotent: a missing membership is not an error.
	RemoveMember(ctx context.Context, groupID, userID string) error
	// ListMembers returns the remote ids of the group's user members.
	ListMembers(ctx context.Context, groupID string) ([]string, error)
}

// RemoteGroup is one group as the directory reports it.
type RemoteGroup struct {
	ID   string
	Name string
}

// GroupSpec is the gateway's group as a directory should see it.
type GroupSpec struct {
	Name        string
	Description string
	// MailNickname (Entra) or the group email's local part (Google).
	MailNickname string
}

// Importer lists a directory's enabled users for import (SPEC 4.7).
type Importer interface {
	// ListUsers returns one page of enabled users and the token of the
	// next page ("" at the end).
	ListUsers(ctx context.Context, pageToken string) ([]ImportUser, string, error)
}

// ImportUser is one remote user offered for import.
type ImportUser struct {
	ID           string
	UPN          string
	Mail         string
	MailNickname string
	GivenName    string
	Surname      string
	DisplayName  string
}
