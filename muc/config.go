package muc

import (
	"context"
	"log/slog"
	"time"
)

// Room creation policies (Config.RoomCreation).
const (
	CreateLocal  = "local"  // every user of one of the server's hosts
	CreateAdmins = "admins" // service admins only
)

// Config configures the module.
type Config struct {
	// Domains are the virtual hosts that get a service; the registry's
	// domains when empty.
	Domains []string
	// Subdomain makes the service host of a domain: conference.example.org.
	Subdomain string
	// RoomCreation is CreateLocal or CreateAdmins.
	RoomCreation string
	// MaxRoomsPerUser bounds the rooms one user owns (0: no limit).
	MaxRoomsPerUser int
	// MaxOccupants bounds every room, whatever its configuration says.
	MaxOccupants int
	// MaxHistory bounds the history a room keeps and sends.
	MaxHistory int
	// MessagesPerSecond is the sustained rate one occupant may send.
	MessagesPerSecond int
	// Defaults is the configuration of new rooms.
	Defaults RoomConfig
	// Secret keys occupant ids (XEP-0421): stable per user and room,
	// unguessable without it.
	Secret []byte
	// IsAdmin reports whether a bare JID is a service admin (server
	// administrators); nil: nobody.
	IsAdmin func(ctx context.Context, bare string) bool
	// LockTimeout destroys a new room its owner has not configured (or
	// accepted as instant room) within this time.
	LockTimeout time.Duration
	// IdleTimeout unloads a persistent room without occupants from memory
	// after this time (its state is stored).
	IdleTimeout time.Duration
	// MAMPageSize and MAMMaxPageSize bound room archive queries.
	MAMPageSize, MAMMaxPageSize int
	// InboxSize bounds the requests queued for one room.
	InboxSize int
	Logger    *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Subdomain == "" {
		c.Subdomain = "conference"
	}
	if c.RoomCreation == "" {
		c.RoomCreation = CreateLocal
	}
	if c.MaxOccupants <= 0 {
		c.MaxOccupants = 1000
	}
	if c.MaxHistory < 0 {
		c.MaxHistory = 0
	}
	if c.MessagesPerSecond <= 0 {
		c.MessagesPerSecond = 10
	}
	if c.Defaults.Whois == "" {
		c.Defaults = DefaultRoomConfig()
	}
	c.Defaults.MaxUsers = min(max(c.Defaults.MaxUsers, 2), c.MaxOccupants)
	c.Defaults.HistoryLength = min(max(c.Defaults.HistoryLength, 0), c.MaxHistory)
	if c.LockTimeout <= 0 {
		c.LockTimeout = 5 * time.Minute
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 10 * time.Minute
	}
	if c.MAMPageSize <= 0 {
		c.MAMPageSize = 50
	}
	if c.MAMMaxPageSize <= 0 {
		c.MAMMaxPageSize = 250
	}
	if c.InboxSize <= 0 {
		c.InboxSize = 512
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}
