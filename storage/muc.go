package storage

import (
	"context"
	"time"
)

// Room affiliations (XEP-0045 §5.2). A user without a stored affiliation
// has "none".
const (
	AffOwner   = "owner"
	AffAdmin   = "admin"
	AffMember  = "member"
	AffOutcast = "outcast"
)

// MUCRoom is a persistent multi-user chat room (XEP-0045). Rooms that are
// not persistent live only in memory and are never stored.
type MUCRoom struct {
	// JID is the bare JID of the room (room@conference.example.org).
	JID string
	// Name and Public are copies of the configuration that the service
	// needs without loading the room (disco#items of public rooms).
	Name   string
	Public bool
	// Config is the room configuration as the MUC module encodes it; the
	// store keeps it byte for byte.
	Config []byte
	// Subject is the room subject, SubjectBy the nick (or room JID) that
	// set it, SubjectAt when. Empty subject: none set.
	Subject   string
	SubjectBy string
	SubjectAt time.Time
	// Created is when the room was created.
	Created time.Time
}

// MUCAffiliation is one user's standing in a room. JID is a bare JID, or a
// domain for affiliations of a whole server (bans).
type MUCAffiliation struct {
	JID         string
	Affiliation string // AffOwner, AffAdmin, AffMember or AffOutcast
	// Nick is the nick reserved by registration (XEP-0045 §7.10), or "".
	Nick string
	// LastNick is the nick the user last joined with, for notifications
	// while the user is away (mentions of it).
	LastNick string
	// Reason given when the affiliation was granted (e.g. a ban reason).
	Reason string
	// Notify is the user's notification setting for this room while away
	// ("" for the room's default).
	Notify string
}

// RoomAffiliation is an affiliation together with its room.
type RoomAffiliation struct {
	Room string
	MUCAffiliation
}

// MUCRooms stores persistent rooms and their affiliations. Room messages
// are kept in the message archive with the room JID as owner, the room's
// vCard (avatar) in VCards under the room JID.
type MUCRooms interface {
	// CreateRoom stores a new room with its first affiliations; ErrExists
	// when a room with that JID is stored.
	CreateRoom(ctx context.Context, room MUCRoom, affs []MUCAffiliation) error
	// Room returns ErrNotFound when no such room is stored.
	Room(ctx context.Context, jid string) (MUCRoom, error)
	// Rooms lists the rooms of a service (the domain part of their JIDs),
	// sorted by JID.
	Rooms(ctx context.Context, service string) ([]MUCRoom, error)
	// UpdateRoom replaces the name, publicity, configuration and subject
	// of a stored room (not Created); ErrNotFound when none.
	UpdateRoom(ctx context.Context, room MUCRoom) error
	// DeleteRoom removes a room, its affiliations and its vCard;
	// ErrNotFound when no room is stored (a vCard under the JID is
	// removed all the same: temporary rooms may have one). Its archive is
	// removed separately (DeleteArchive).
	DeleteRoom(ctx context.Context, jid string) error

	// RoomAffiliations returns the affiliations of a room, sorted by JID.
	RoomAffiliations(ctx context.Context, room string) ([]MUCAffiliation, error)
	// SetRoomAffiliation creates or replaces a.JID's affiliation in room;
	// an Affiliation of "" or "none" removes it. ErrNotFound when the room
	// is not stored.
	SetRoomAffiliation(ctx context.Context, room string, a MUCAffiliation) error
	// UserRoomAffiliations lists the affiliations of a bare JID in every
	// room, sorted by room.
	UserRoomAffiliations(ctx context.Context, jid string) ([]RoomAffiliation, error)
	// DeleteUserRoomAffiliations removes a bare JID's affiliations in
	// every room (account deletion).
	DeleteUserRoomAffiliations(ctx context.Context, jid string) error
}

// ArchiveEditor changes archived messages in place.
type ArchiveEditor interface {
	// ReplaceArchived replaces the stored stanza of message id in owner's
	// archive (a tombstone after moderation, XEP-0425), keeping its
	// position and metadata; ErrNotFound when there is no such message.
	ReplaceArchived(ctx context.Context, owner, id string, raw []byte) error
}
