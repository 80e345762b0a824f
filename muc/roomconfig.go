package muc

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

// Values of RoomConfig.Whois.
const (
	WhoisModerators = "moderators"
	WhoisAnyone     = "anyone"
)

// Values of RoomConfig.AllowPM.
const (
	PMAnyone       = "anyone"
	PMParticipants = "participants"
	PMModerators   = "moderators"
	PMNone         = "none"
)

// Values of RoomConfig.Notify and of a member's own setting.
const (
	NotifyMentions = "mentions"
	NotifyAll      = "all"
	NotifyNone     = "none"
)

// Form fields that XEP-0045 does not register.
const (
	// fieldNotify is the room's default for notifying away members (room
	// configuration) or a member's own choice (registration form).
	fieldNotify = "{urn:parley:muc:0}notify"
	// fieldTigaseOffline is the registration field Tigase (and Prosody's
	// mod_muc_offline_delivery, used by Siskin and Monal) use for "send me
	// the room's messages while I am offline": true means NotifyAll.
	fieldTigaseOffline = "{http://tigase.org/protocol/muc}offline"
	fieldArchiving     = "muc#roomconfig_enablearchiving"
)

// RoomConfig is a room's configuration (muc#roomconfig). It is stored as
// JSON, so field names are part of the storage format.
type RoomConfig struct {
	Name          string `json:"name"`
	Description   string `json:"description"`
	Language      string `json:"language"`
	Persistent    bool   `json:"persistent"`
	Public        bool   `json:"public"`
	MembersOnly   bool   `json:"members_only"`
	Moderated     bool   `json:"moderated"`
	Password      string `json:"password"` // "" for none
	Whois         string `json:"whois"`
	MaxUsers      int    `json:"max_users"`
	HistoryLength int    `json:"history_length"`
	AllowPM       string `json:"allow_pm"`
	ChangeSubject bool   `json:"change_subject"`
	AllowInvites  bool   `json:"allow_invites"`
	Archive       bool   `json:"archive"`
	Notify        string `json:"notify"`
	// PresenceBroadcast lists the roles whose presence the others get
	// (muc#roomconfig_presencebroadcast); nil, as in rooms stored before
	// the field existed, is every role.
	PresenceBroadcast []string `json:"presence_broadcast"`
	// GetMemberList lists the roles whose occupants may read the member
	// list (muc#roomconfig_getmemberlist); nil, as in rooms stored before
	// the field existed, is moderators, and every role when real JIDs are
	// public (OMEMO group chats).
	GetMemberList []string `json:"get_member_list"`
}

// memberListRoles is the value of muc#roomconfig_getmemberlist.
func (c RoomConfig) memberListRoles() []string {
	switch {
	case c.GetMemberList != nil:
		return c.GetMemberList
	case c.NonAnonymous():
		return []string{roleModerator, roleParticipant, roleVisitor}
	}
	return []string{roleModerator}
}

// broadcasts reports whether the presence of an occupant in role goes to
// the other occupants (its own sessions always get it).
func (c RoomConfig) broadcasts(role string) bool {
	return c.PresenceBroadcast == nil || slices.Contains(c.PresenceBroadcast, role)
}

// broadcastRoles is the value of muc#roomconfig_presencebroadcast.
func (c RoomConfig) broadcastRoles() []string {
	if c.PresenceBroadcast == nil {
		return []string{roleModerator, roleParticipant, roleVisitor}
	}
	return c.PresenceBroadcast
}

// DefaultRoomConfig is the configuration of new rooms by default.
func DefaultRoomConfig() RoomConfig { return DefaultSettings().Defaults.roomConfig() }

// NonAnonymous reports whether every occupant sees real JIDs.
func (c RoomConfig) NonAnonymous() bool { return c.Whois == WhoisAnyone }

func encodeConfig(c RoomConfig) []byte {
	b, _ := json.Marshal(c) // plain struct: cannot fail
	return b
}

// decodeConfig reads a stored configuration over defaults (fields added
// later keep their defaults for old rooms).
func decodeConfig(raw []byte, defaults RoomConfig) (RoomConfig, error) {
	c := defaults
	if len(raw) == 0 {
		return c, nil
	}
	err := json.Unmarshal(raw, &c)
	return c, err
}

// Form helpers.

func field(typ, name, label string, values ...string) *wire.Element {
	f := wire.NewElement(xep.NSDataForms, "field", "var", name)
	if typ != "" {
		f.SetAttr("type", typ)
	}
	if label != "" {
		f.SetAttr("label", label)
	}
	for _, v := range values {
		f.Add(wire.NewElement(xep.NSDataForms, "value").AddText(v))
	}
	return f
}

func options(f *wire.Element, opts ...string) *wire.Element {
	for i := 0; i+1 < len(opts); i += 2 {
		f.Add(wire.NewElement(xep.NSDataForms, "option", "label", opts[i+1]).
			Add(wire.NewElement(xep.NSDataForms, "value").AddText(opts[i])))
	}
	return f
}

func boolValue(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func formType(ns string) *wire.Element { return field("hidden", "FORM_TYPE", "", ns) }

// configForm is the owner's configuration form (§10.2) with the current
// values.
func (r *room) configForm() *wire.Element {
	c := r.cfg
	x := wire.NewElement(xep.NSDataForms, "x", "type", "form")
	x.Add(wire.NewElement(xep.NSDataForms, "title").AddText("Configuration of " + r.jid.String()))
	x.Add(formType(nsRoomConfig),
		field("text-single", "muc#roomconfig_roomname", "Name", c.Name),
		field("text-single", "muc#roomconfig_roomdesc", "Description", c.Description),
		field("text-single", "muc#roomconfig_lang", "Language of the discussion", c.Language),
		field("boolean", "muc#roomconfig_persistentroom", "Keep the room when the last occupant leaves", boolValue(c.Persistent)),
		field("boolean", "muc#roomconfig_publicroom", "List the room in the directory", boolValue(c.Public)),
		field("boolean", "muc#roomconfig_membersonly", "Only members may join", boolValue(c.MembersOnly)),
		field("boolean", "muc#roomconfig_moderatedroom", "Only occupants with voice may talk", boolValue(c.Moderated)),
		field("boolean", "muc#roomconfig_passwordprotectedroom", "Require a password to join", boolValue(c.Password != "")),
		field("text-private", "muc#roomconfig_roomsecret", "Password", c.Password),
		options(field("list-single", "muc#roomconfig_whois", "Who may see real JIDs", c.Whois),
			WhoisModerators, "Moderators", WhoisAnyone, "Anyone"),
		options(field("list-single", "muc#roomconfig_maxusers", "Maximum number of occupants", strconv.Itoa(c.MaxUsers)),
			r.maxUsersOptions()...),
		field("text-single", "muc#maxhistoryfetch", "Messages sent to new occupants (at most "+strconv.Itoa(r.m.cfg.MaxHistory)+")", strconv.Itoa(c.HistoryLength)),
		options(field("list-single", "muc#roomconfig_allowpm", "Who may send private messages", c.AllowPM),
			PMAnyone, "Anyone", PMParticipants, "Participants", PMModerators, "Moderators", PMNone, "Nobody"),
		field("boolean", "muc#roomconfig_changesubject", "Participants may change the subject", boolValue(c.ChangeSubject)),
		field("boolean", "muc#roomconfig_allowinvites", "Participants may invite others", boolValue(c.AllowInvites)),
		options(field("list-multi", "muc#roomconfig_presencebroadcast", "Roles whose presence is shown to everyone", c.broadcastRoles()...),
			roleModerator, "Moderators", roleParticipant, "Participants", roleVisitor, "Visitors"),
		options(field("list-multi", "muc#roomconfig_getmemberlist", "Roles that may read the member list", c.memberListRoles()...),
			roleModerator, "Moderators", roleParticipant, "Participants", roleVisitor, "Visitors"),
		field("boolean", fieldArchiving, "Archive messages", boolValue(c.Archive)),
		options(field("list-single", fieldNotify, "Push notifications for members who are away", c.Notify),
			NotifyMentions, "Mentions of their nick", NotifyAll, "Every message", NotifyNone, "None"),
		field("jid-multi", "muc#roomconfig_roomowners", "Owners", r.affiliated(affOwner)...),
		field("jid-multi", "muc#roomconfig_roomadmins", "Admins", r.affiliated(affAdmin)...),
	)
	return x
}

func (r *room) maxUsersOptions() []string {
	var opts []string
	for _, n := range []int{5, 10, 20, 30, 50, 100, 200, 500, 1000, 5000} {
		if n <= r.m.cfg.MaxOccupants {
			opts = append(opts, strconv.Itoa(n), strconv.Itoa(n))
		}
	}
	if s := strconv.Itoa(r.cfg.MaxUsers); !slices.Contains(opts, s) {
		opts = append(opts, s, s)
	}
	return opts
}

// formValues reads a submitted form: field name → values.
func formValues(x *wire.Element) map[string][]string {
	out := map[string][]string{}
	for _, f := range x.ChildrenNamed(xep.NSDataForms, "field") {
		var vals []string
		for _, v := range f.ChildrenNamed(xep.NSDataForms, "value") {
			vals = append(vals, v.Text())
		}
		out[f.AttrValue("var")] = vals
	}
	return out
}

func parseBool(v string) (bool, bool) {
	switch strings.TrimSpace(v) {
	case "1", "true":
		return true, true
	case "0", "false":
		return false, true
	}
	return false, false
}

// configChange is what applying a submitted form changes besides the
// configuration itself.
type configChange struct {
	owners, admins []string // nil: not in the form
}

// applyConfigForm returns c changed by a submitted muc#roomconfig form,
// or a bad-request / not-acceptable error naming the field.
func (r *room) applyConfigForm(c RoomConfig, x *wire.Element) (RoomConfig, configChange, error) {
	var chg configChange
	vals := formValues(x)
	if ft := vals["FORM_TYPE"]; len(ft) > 0 && ft[0] != nsRoomConfig {
		return c, chg, module.Errorf(wire.ErrBadRequest, "FORM_TYPE must be %s", nsRoomConfig)
	}
	bad := func(name, why string) error {
		return module.Errorf(wire.ErrNotAcceptable, "%s: %s", name, why)
	}
	passwordProtected := c.Password != ""
	for name, v := range vals {
		single := ""
		if len(v) > 0 {
			single = v[0]
		}
		var err error
		setBool := func(dst *bool) {
			b, ok := parseBool(single)
			if !ok {
				err = bad(name, "expected a boolean")
				return
			}
			*dst = b
		}
		switch name {
		case "FORM_TYPE":
		case "muc#roomconfig_roomname":
			if len(single) > maxNameBytes {
				err = bad(name, "too long")
			}
			c.Name = single
		case "muc#roomconfig_roomdesc":
			if len(single) > maxDescBytes {
				err = bad(name, "too long")
			}
			c.Description = single
		case "muc#roomconfig_lang":
			if len(single) > 35 || strings.ContainsAny(single, " <>&'\"") {
				err = bad(name, "not a language tag")
			}
			c.Language = single
		case "muc#roomconfig_persistentroom":
			setBool(&c.Persistent)
		case "muc#roomconfig_publicroom":
			setBool(&c.Public)
		case "muc#roomconfig_membersonly":
			setBool(&c.MembersOnly)
		case "muc#roomconfig_moderatedroom":
			setBool(&c.Moderated)
		case "muc#roomconfig_passwordprotectedroom":
			setBool(&passwordProtected)
		case "muc#roomconfig_roomsecret":
			if len(single) > maxNameBytes {
				err = bad(name, "too long")
			}
			c.Password = single
		case "muc#roomconfig_whois":
			switch single {
			case WhoisModerators, WhoisAnyone:
				c.Whois = single
			default:
				err = bad(name, "expected moderators or anyone")
			}
		case "muc#roomconfig_maxusers":
			n, e := strconv.Atoi(strings.TrimSpace(single))
			switch {
			case single == "none" || single == "":
				c.MaxUsers = r.m.cfg.MaxOccupants
			case e != nil || n < 1:
				err = bad(name, "expected a number")
			case n > r.m.cfg.MaxOccupants:
				err = bad(name, "at most "+strconv.Itoa(r.m.cfg.MaxOccupants)+" on this service")
			default:
				c.MaxUsers = n
			}
		case "muc#maxhistoryfetch", "muc#roomconfig_historylength":
			n, e := strconv.Atoi(strings.TrimSpace(single))
			if e != nil || n < 0 {
				err = bad(name, "expected a number")
			} else {
				c.HistoryLength = min(n, r.m.cfg.MaxHistory)
			}
		case "muc#roomconfig_allowpm":
			switch single {
			case PMAnyone, PMParticipants, PMModerators, PMNone:
				c.AllowPM = single
			default:
				err = bad(name, "expected anyone, participants, moderators or none")
			}
		case "muc#roomconfig_changesubject":
			setBool(&c.ChangeSubject)
		case "muc#roomconfig_allowinvites":
			setBool(&c.AllowInvites)
		case "muc#roomconfig_presencebroadcast", "muc#roomconfig_getmemberlist":
			roles := []string{}
			for _, role := range v {
				switch role {
				case roleModerator, roleParticipant, roleVisitor:
					if !slices.Contains(roles, role) {
						roles = append(roles, role)
					}
				default:
					err = bad(name, "expected moderator, participant or visitor")
				}
			}
			if name == "muc#roomconfig_getmemberlist" {
				c.GetMemberList = roles
			} else {
				c.PresenceBroadcast = roles
			}
		case fieldArchiving, "mam":
			setBool(&c.Archive)
		case fieldNotify:
			switch single {
			case NotifyMentions, NotifyAll, NotifyNone:
				c.Notify = single
			default:
				err = bad(name, "expected mentions, all or none")
			}
		case "muc#roomconfig_roomowners", "muc#roomconfig_roomadmins":
			var list []string
			for _, s := range v {
				j, e := jid.Parse(strings.TrimSpace(s))
				if e != nil || j.Resourcepart() != "" {
					err = module.Errorf(wire.ErrJIDMalformed, "%s: %q is not a bare JID", name, s)
					break
				}
				list = append(list, j.Bare().String())
			}
			if name == "muc#roomconfig_roomowners" {
				chg.owners = nonNil(list)
			} else {
				chg.admins = nonNil(list)
			}
		default:
			// Fields of other servers' forms (clients echo them back) are
			// ignored, as XEP-0004 allows.
		}
		if err != nil {
			return c, chg, err
		}
	}
	if !passwordProtected {
		c.Password = ""
	} else if c.Password == "" {
		return c, chg, bad("muc#roomconfig_roomsecret", "a password-protected room needs a password")
	}
	return c, chg, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Limits of configuration text.
const (
	maxNameBytes = 256
	maxDescBytes = 2048
)
