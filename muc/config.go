package muc

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"mellium.im/xmpp/jid"
)

// Room creation policies (Config.RoomCreation).
const (
	CreateLocal  = "local"  // every user of one of the server's hosts
	CreateAdmins = "admins" // service admins only
)

// Settings is the muc section of the configuration file (the YAML keys
// are the mapstructure tags); server.Config composes it.
type Settings struct {
	// Enabled runs a service on <Subdomain>.<host> for every host.
	Enabled   bool   `mapstructure:"enabled"`
	Subdomain string `mapstructure:"subdomain"`
	// RoomCreation says who may create rooms: CreateLocal or CreateAdmins.
	RoomCreation string `mapstructure:"room_creation"`
	// MaxRoomsPerUser bounds the rooms one user owns (stored ones, and
	// temporary ones they created); 0: no limit. Admins are exempt.
	MaxRoomsPerUser int `mapstructure:"max_rooms_per_user"`
	// MaxOccupants bounds every room, whatever its configuration says.
	MaxOccupants int `mapstructure:"max_occupants"`
	// MaxHistory bounds the history a room keeps and sends.
	MaxHistory int `mapstructure:"max_history"`
	// MessagesPerSecond is the sustained rate one occupant may send to a
	// room (bursts of twice that).
	MessagesPerSecond int `mapstructure:"messages_per_second"`
	// Defaults is the configuration of new rooms.
	Defaults RoomDefaults `mapstructure:"defaults"`
}

// RoomDefaults is the configuration a new room starts with (the defaults
// subsection of the muc section).
type RoomDefaults struct {
	Persistent  bool `mapstructure:"persistent"`
	Public      bool `mapstructure:"public"`
	MembersOnly bool `mapstructure:"members_only"`
	Moderated   bool `mapstructure:"moderated"`
	// Whois: who sees occupants' real JIDs, WhoisModerators or WhoisAnyone.
	Whois    string `mapstructure:"whois"`
	MaxUsers int    `mapstructure:"max_users"`
	// HistoryLength: messages sent to a new occupant.
	HistoryLength int `mapstructure:"history_length"`
	// AllowPM: who may send private messages (PMAnyone, ...).
	AllowPM       string `mapstructure:"allow_pm"`
	ChangeSubject bool   `mapstructure:"change_subject"`
	AllowInvites  bool   `mapstructure:"allow_invites"`
	Archive       bool   `mapstructure:"archive"`
	Language      string `mapstructure:"language"`
	// Notify: push notifications for members who are away
	// (NotifyMentions, NotifyAll or NotifyNone).
	Notify string `mapstructure:"notify"`
}

// DefaultSettings are the defaults of the muc section.
func DefaultSettings() Settings {
	return Settings{Enabled: true, Subdomain: "conference", RoomCreation: CreateLocal, MaxRoomsPerUser: 100,
		MaxOccupants: 1000, MaxHistory: 100, MessagesPerSecond: 10,
		Defaults: RoomDefaults{Public: true, Whois: WhoisModerators, MaxUsers: 200, HistoryLength: 20,
			AllowPM: PMAnyone, Archive: true, Notify: NotifyMentions}}
}

// roomConfig is the configuration a new room starts with.
func (d RoomDefaults) roomConfig() RoomConfig {
	return RoomConfig{Persistent: d.Persistent, Public: d.Public, MembersOnly: d.MembersOnly, Moderated: d.Moderated,
		Whois: d.Whois, MaxUsers: d.MaxUsers, HistoryLength: d.HistoryLength, AllowPM: d.AllowPM,
		ChangeSubject: d.ChangeSubject, AllowInvites: d.AllowInvites, Archive: d.Archive, Language: d.Language,
		Notify: d.Notify}
}

// Problems returns what is wrong with s, each as "key: problem" with the
// key relative to the muc section; hosts are the server's virtual hosts.
// It does no I/O.
func (s Settings) Problems(hosts []string) []string {
	if !s.Enabled {
		return nil
	}
	var p []string
	bad := func(key, format string, args ...any) { p = append(p, key+": "+fmt.Sprintf(format, args...)) }
	if _, err := jid.Parse(s.Subdomain + ".example"); s.Subdomain == "" || err != nil || strings.ContainsAny(s.Subdomain, "@/. ") {
		bad("subdomain", "%q is not a domain label such as conference", s.Subdomain)
	} else {
		for _, h := range hosts {
			if slices.Contains(hosts, strings.ToLower(s.Subdomain)+"."+strings.ToLower(h)) {
				bad("subdomain", "%s.%s is one of hosts", s.Subdomain, h)
			}
		}
	}
	switch s.RoomCreation {
	case CreateLocal, CreateAdmins:
	default:
		bad("room_creation", "%q is not allowed (expected local or admins)", s.RoomCreation)
	}
	if s.MaxRoomsPerUser < 0 {
		bad("max_rooms_per_user", "expected zero (no limit) or a positive number")
	}
	if s.MaxOccupants < 2 {
		bad("max_occupants", "expected a number >= 2, got %d", s.MaxOccupants)
	}
	if s.MaxHistory < 0 || s.MaxHistory > 1000 {
		bad("max_history", "expected a number of messages from 0 to 1000")
	}
	if s.MessagesPerSecond < 1 {
		bad("messages_per_second", "expected a number >= 1, got %d", s.MessagesPerSecond)
	}
	d := s.Defaults
	switch d.Whois {
	case WhoisModerators, WhoisAnyone:
	default:
		bad("defaults.whois", "%q is not allowed (expected moderators or anyone)", d.Whois)
	}
	if d.MaxUsers < 2 || d.MaxUsers > s.MaxOccupants {
		bad("defaults.max_users", "expected a number from 2 to muc.max_occupants (%d)", s.MaxOccupants)
	}
	if d.HistoryLength < 0 || d.HistoryLength > s.MaxHistory {
		bad("defaults.history_length", "expected a number from 0 to muc.max_history (%d)", s.MaxHistory)
	}
	switch d.AllowPM {
	case PMAnyone, PMParticipants, PMModerators, PMNone:
	default:
		bad("defaults.allow_pm", "%q is not allowed (expected anyone, participants, moderators or none)", d.AllowPM)
	}
	switch d.Notify {
	case NotifyMentions, NotifyAll, NotifyNone:
	default:
		bad("defaults.notify", "%q is not allowed (expected mentions, all or none)", d.Notify)
	}
	if len(d.Language) > 35 || strings.ContainsAny(d.Language, " <>&\"'") {
		bad("defaults.language", "%q is not a language tag such as en", d.Language)
	}
	return p
}

// Config configures the module: the file's settings and what the server
// wires in.
type Config struct {
	Settings
	// Domains are the virtual hosts that get a service; the registry's
	// domains when empty.
	Domains []string
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

	defaults RoomConfig // new rooms' configuration, from Settings.Defaults
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
	if c.Settings.Defaults.Whois == "" {
		c.Settings.Defaults = DefaultSettings().Defaults
	}
	c.defaults = c.Settings.Defaults.roomConfig()
	c.defaults.MaxUsers = min(max(c.defaults.MaxUsers, 2), c.MaxOccupants)
	c.defaults.HistoryLength = min(max(c.defaults.HistoryLength, 0), c.MaxHistory)
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
