package admin

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

// Module registers the XEP-0133 service administration commands (for
// administrators), the commands every user may run on their own account,
// and the XEP-0401 invitation commands, into the ad-hoc command registry
// that the adhoc module serves.
type Module struct{ svc *Service }

var _ module.Module = (*Module)(nil)

// NewModule returns the module of svc.
func NewModule(svc *Service) *Module { return &Module{svc: svc} }

// Name implements module.Module.
func (m *Module) Name() string { return "admin" }

// Per-user command nodes (no XEP defines them; Parley's own).
const (
	NodeChangePassword = "urn:parley:cmd:change-password"
	NodeSessions       = "urn:parley:cmd:sessions"
	NodeDeleteAccount  = "urn:parley:cmd:delete-account"
)

// Register implements module.Module.
func (m *Module) Register(r *module.Registry) error {
	o, _ := r.Sessions().(Online)
	m.svc.attach(o, r.Sender())
	s := m.svc
	admin := func(ctx context.Context, j jid.JID) bool { return s.IsAdmin(ctx, j.Bare().String()) }
	user := func(ctx context.Context, j jid.JID) bool { return j.Localpart() != "" }
	inviter := func(ctx context.Context, j jid.JID) bool {
		return s.pol().UsersCanInvite || s.IsAdmin(ctx, j.Bare().String())
	}
	adminNode := func(n string) string { return xep.NSAdmin + "#" + n }
	for _, c := range []module.Command{
		{Node: adminNode("add-user"), Name: "Add a user", Allowed: admin, Form: m.formAddUser, Run: m.addUser},
		{Node: adminNode("delete-user"), Name: "Delete users", Allowed: admin,
			Form: jidsForm("Delete users", "The accounts to delete, with everything stored for them"), Run: m.deleteUsers},
		{Node: adminNode("disable-user"), Name: "Disable users", Allowed: admin, Form: m.formDisable, Run: m.disableUsers},
		{Node: adminNode("reenable-user"), Name: "Re-enable users", Allowed: admin,
			Form: jidsForm("Re-enable users", "The accounts that may log in again"), Run: m.enableUsers},
		{Node: adminNode("get-disabled-users-list"), Name: "List disabled users", Allowed: admin,
			Form: maxItemsForm("List disabled users"), Run: m.disabledUsers},
		{Node: adminNode("get-disabled-users-num"), Name: "Count disabled users", Allowed: admin, Run: m.disabledNum},
		{Node: adminNode("change-user-password"), Name: "Change a user's password", Allowed: admin,
			Form: m.formChangePassword, Run: m.changePassword},
		{Node: adminNode("end-user-session"), Name: "End a user's sessions", Allowed: admin,
			Form: jidsForm("End user sessions", "The accounts whose sessions to end"), Run: m.endSessions},
		{Node: adminNode("get-registered-users-list"), Name: "List registered users", Allowed: admin,
			Form: maxItemsForm("List registered users"), Run: m.registeredUsers},
		{Node: adminNode("get-registered-users-num"), Name: "Count registered users", Allowed: admin, Run: m.registeredNum},
		{Node: adminNode("get-online-users-list"), Name: "List online users", Allowed: admin,
			Form: maxItemsForm("List online users"), Run: m.onlineUsers},
		{Node: adminNode("get-online-users-num"), Name: "Count online users", Allowed: admin, Run: m.onlineNum},
		{Node: adminNode("user-stats"), Name: "Get user statistics", Allowed: admin, Form: m.formUserStats, Run: m.userStats},
		{Node: adminNode("announce"), Name: "Send an announcement to online users", Allowed: admin,
			Form: m.formAnnounce, Run: m.announce},
		{Node: adminNode("set-welcome"), Name: "Edit the welcome message", Allowed: admin, Form: m.formWelcome, Run: m.setWelcome},
		{Node: adminNode("delete-welcome"), Name: "Delete the welcome message", Allowed: admin, Run: m.deleteWelcome},
		{Node: xep.NSInvite + "#invite", Name: "Invite someone", Allowed: inviter, Run: m.invite},
		{Node: xep.NSInvite + "#create-account", Name: "Create an account invitation", Allowed: admin,
			Form: m.formCreateAccount, Run: m.createAccount},
		{Node: NodeChangePassword, Name: "Change my password", Allowed: user, Form: m.formOwnPassword, Run: m.ownPassword},
		{Node: NodeSessions, Name: "List my sessions", Allowed: user, Run: m.ownSessions},
		{Node: NodeDeleteAccount, Name: "Delete my account", Allowed: user, Form: m.formDeleteOwn, Run: m.deleteOwn},
	} {
		r.Command(c)
	}
	return nil
}

// cmdErr maps a service error to the stanza error a command returns.
func cmdErr(err error) error {
	var se *module.StanzaError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &se):
		return err
	case errors.Is(err, ErrNoSuchUser):
		return module.Errorf(wire.ErrItemNotFound, "%v", err)
	case errors.Is(err, ErrUserExists):
		return module.Errorf(wire.ErrConflict, "%v", err)
	case errors.Is(err, ErrBadJID), errors.Is(err, ErrBadPassword):
		return module.Errorf(wire.ErrNotAcceptable, "%v", err)
	case errors.Is(err, ErrNotRunning):
		return module.Errorf(wire.ErrServiceUnavailable, "%v", err)
	case errors.Is(err, ErrInput):
		return module.Errorf(wire.ErrBadRequest, "%v", err)
	}
	return err // internal: logged, not shown
}

func adminForm(title, instructions string, fields ...*wire.Element) *wire.Element {
	x := xep.Form("form", xep.NSAdmin, title)
	if instructions != "" {
		x.Add(wire.NewElement(xep.NSDataForms, "instructions").AddText(instructions))
	}
	return x.Add(fields...)
}

func resultForm(formType string, fields ...*wire.Element) *wire.Element {
	return xep.Form("result", formType, "").Add(fields...)
}

func jidsForm(title, label string) func(context.Context, jid.JID) (*wire.Element, error) {
	return func(context.Context, jid.JID) (*wire.Element, error) {
		return adminForm(title, "", xep.Required(xep.FormField("accountjids", "jid-multi", label))), nil
	}
}

func maxItemsForm(title string) func(context.Context, jid.JID) (*wire.Element, error) {
	return func(context.Context, jid.JID) (*wire.Element, error) {
		f := xep.FormField("max_items", "list-single", "Maximum number of items to show", "100")
		for _, v := range []string{"25", "50", "75", "100", "150", "200", "none"} {
			f.Add(wire.NewElement(xep.NSDataForms, "option", "label", v).Add(wire.NewElement(xep.NSDataForms, "value").AddText(v)))
		}
		return adminForm(title, "", f), nil
	}
}

// maxItems reads max_items (XEP-0133 §4.14): a number or "none".
func maxItems(v module.FormValues) (int, error) {
	s := v.Get("max_items")
	if s == "" || s == "none" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, badInput("max_items: %q is not a positive number", s)
	}
	return n, nil
}

func truncate(list []string, n int) []string {
	if n > 0 && len(list) > n {
		return list[:n]
	}
	return list
}

func text(v module.FormValues, name string) string { return strings.Join(v[name], "\n") }

func done(note string) *module.CommandResult { return &module.CommandResult{Note: note} }

func (m *Module) formAddUser(context.Context, jid.JID) (*wire.Element, error) {
	return adminForm("Adding a user", "Fill out this form to add a user.",
		xep.Required(xep.FormField("accountjid", "jid-single", "The Jabber ID for the account to be added")),
		xep.Required(xep.FormField("password", "text-private", "The password for this account")),
		xep.Required(xep.FormField("password-verify", "text-private", "Retype password"))), nil
}

func (m *Module) addUser(ctx context.Context, _ jid.JID, v module.FormValues) (*module.CommandResult, error) {
	if v.Get("password") != v.Get("password-verify") {
		return nil, module.Errorf(wire.ErrNotAcceptable, "the passwords do not match")
	}
	bare, err := m.svc.AddUser(ctx, v.Get("accountjid"), v.Get("password"))
	if err != nil {
		return nil, cmdErr(err)
	}
	return done("User " + bare + " created"), nil
}

// eachJID runs fn for each accountjids value and sums up the outcome.
func eachJID(v module.FormValues, fn func(string) (string, error)) (*module.CommandResult, error) {
	jids := v["accountjids"]
	if len(jids) == 0 {
		return nil, module.Errorf(wire.ErrBadRequest, "no account given (accountjids)")
	}
	var ok, failed []string
	for _, j := range jids {
		msg, err := fn(j)
		if err != nil && len(jids) == 1 {
			return nil, cmdErr(err)
		}
		if err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", j, err))
			continue
		}
		ok = append(ok, msg)
	}
	res := &module.CommandResult{Note: strings.Join(append(ok, failed...), "\n")}
	if len(failed) > 0 {
		res.NoteType = "warn"
	}
	return res, nil
}

func (m *Module) deleteUsers(ctx context.Context, requester jid.JID, v module.FormValues) (*module.CommandResult, error) {
	return eachJID(v, func(j string) (string, error) {
		bare, err := m.svc.DeleteUser(ctx, j)
		if err != nil {
			return "", err
		}
		return "deleted " + bare, nil
	})
}

func (m *Module) formDisable(context.Context, jid.JID) (*wire.Element, error) {
	return adminForm("Disabling users", "The accounts cannot log in until re-enabled; nothing is deleted.",
		xep.Required(xep.FormField("accountjids", "jid-multi", "The accounts to disable")),
		xep.FormField("reason", "text-single", "Reason (shown to the user when a login is refused)"),
		xep.FormField("duration", "text-single", "For how long (e.g. 7d, 36h; empty: until re-enabled)")), nil
}

func (m *Module) disableUsers(ctx context.Context, requester jid.JID, v module.FormValues) (*module.CommandResult, error) {
	d, err := ParseTTL(v.Get("duration"))
	if err != nil {
		return nil, cmdErr(err)
	}
	return eachJID(v, func(j string) (string, error) {
		bare, err := m.svc.DisableUser(ctx, j, v.Get("reason"), requester.Bare().String(), d)
		if err != nil {
			return "", err
		}
		return "disabled " + bare, nil
	})
}

func (m *Module) enableUsers(ctx context.Context, _ jid.JID, v module.FormValues) (*module.CommandResult, error) {
	return eachJID(v, func(j string) (string, error) {
		bare, err := m.svc.EnableUser(ctx, j)
		if err != nil {
			return "", err
		}
		return "re-enabled " + bare, nil
	})
}

// disabledOn lists the disabled accounts of a domain.
func (m *Module) disabledOn(ctx context.Context, domain string) ([]string, error) {
	list, err := m.svc.DisabledUsers(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, sp := range list {
		if strings.HasSuffix(sp.Account, "@"+domain) {
			out = append(out, sp.Account)
		}
	}
	return out, nil
}

func (m *Module) disabledUsers(ctx context.Context, requester jid.JID, v module.FormValues) (*module.CommandResult, error) {
	n, err := maxItems(v)
	if err != nil {
		return nil, cmdErr(err)
	}
	list, err := m.disabledOn(ctx, domainOf(requester))
	if err != nil {
		return nil, err
	}
	return &module.CommandResult{Form: resultForm(xep.NSAdmin,
		xep.FormField("disableduserjids", "jid-multi", "The list of all disabled users", truncate(list, n)...))}, nil
}

func (m *Module) disabledNum(ctx context.Context, requester jid.JID, _ module.FormValues) (*module.CommandResult, error) {
	list, err := m.disabledOn(ctx, domainOf(requester))
	if err != nil {
		return nil, err
	}
	return &module.CommandResult{Form: resultForm(xep.NSAdmin,
		xep.FormField("disabledusersnum", "text-single", "The number of disabled users", strconv.Itoa(len(list))))}, nil
}

func (m *Module) endSessions(ctx context.Context, _ jid.JID, v module.FormValues) (*module.CommandResult, error) {
	return eachJID(v, func(j string) (string, error) {
		n, err := m.svc.EndSessions(j)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("ended %d session(s) of %s", n, j), nil
	})
}

func (m *Module) formChangePassword(context.Context, jid.JID) (*wire.Element, error) {
	return adminForm("Changing a user password", "",
		xep.Required(xep.FormField("accountjid", "jid-single", "The Jabber ID for this account")),
		xep.Required(xep.FormField("password", "text-private", "The password for this account"))), nil
}

func (m *Module) changePassword(ctx context.Context, _ jid.JID, v module.FormValues) (*module.CommandResult, error) {
	bare, err := m.svc.SetPassword(ctx, v.Get("accountjid"), v.Get("password"))
	if err != nil {
		return nil, cmdErr(err)
	}
	return done("Password of " + bare + " changed"), nil
}

// domainOf is the domain the requester administers with these commands.
func domainOf(requester jid.JID) string { return requester.Domainpart() }

func (m *Module) registeredUsers(ctx context.Context, requester jid.JID, v module.FormValues) (*module.CommandResult, error) {
	n, err := maxItems(v)
	if err != nil {
		return nil, cmdErr(err)
	}
	users, err := m.svc.ListUsers(ctx, domainOf(requester))
	if err != nil {
		return nil, cmdErr(err)
	}
	return &module.CommandResult{Form: resultForm(xep.NSAdmin,
		xep.FormField("registereduserjids", "jid-multi", "The list of all users", truncate(users, n)...))}, nil
}

func (m *Module) registeredNum(ctx context.Context, requester jid.JID, _ module.FormValues) (*module.CommandResult, error) {
	users, err := m.svc.ListUsers(ctx, domainOf(requester))
	if err != nil {
		return nil, cmdErr(err)
	}
	return &module.CommandResult{Form: resultForm(xep.NSAdmin,
		xep.FormField("registeredusersnum", "text-single", "The number of registered users", strconv.Itoa(len(users))))}, nil
}

func (m *Module) onlineUsers(_ context.Context, requester jid.JID, v module.FormValues) (*module.CommandResult, error) {
	n, err := maxItems(v)
	if err != nil {
		return nil, cmdErr(err)
	}
	users, err := m.svc.OnlineUsers(domainOf(requester))
	if err != nil {
		return nil, cmdErr(err)
	}
	return &module.CommandResult{Form: resultForm(xep.NSAdmin,
		xep.FormField("onlineuserjids", "text-multi", "The list of all online users", truncate(users, n)...))}, nil
}

func (m *Module) onlineNum(_ context.Context, requester jid.JID, _ module.FormValues) (*module.CommandResult, error) {
	users, err := m.svc.OnlineUsers(domainOf(requester))
	if err != nil {
		return nil, cmdErr(err)
	}
	return &module.CommandResult{Form: resultForm(xep.NSAdmin,
		xep.FormField("onlineusersnum", "text-single", "The number of online users", strconv.Itoa(len(users))))}, nil
}

func (m *Module) formUserStats(context.Context, jid.JID) (*wire.Element, error) {
	return adminForm("Get user statistics", "",
		xep.Required(xep.FormField("accountjid", "jid-single", "The Jabber ID for statistics"))), nil
}

func (m *Module) userStats(ctx context.Context, _ jid.JID, v module.FormValues) (*module.CommandResult, error) {
	st, err := m.svc.Stats(ctx, v.Get("accountjid"))
	if err != nil {
		return nil, cmdErr(err)
	}
	return &module.CommandResult{Form: resultForm(xep.NSAdmin,
		xep.FormField("accountjid", "jid-single", "The Jabber ID", st.JID),
		xep.FormField("rostersize", "text-single", "Roster size", strconv.Itoa(st.RosterItems)),
		xep.FormField("offlinemessages", "text-single", "Offline messages waiting", strconv.Itoa(st.OfflineMessages)),
		xep.FormField("onlineresources", "text-multi", "Online resources", st.Sessions...))}, nil
}

func (m *Module) formAnnounce(context.Context, jid.JID) (*wire.Element, error) {
	return adminForm("Making an announcement", "Fill out this form to make an announcement to all active users of this service.",
		xep.FormField("subject", "text-single", "Subject"),
		xep.Required(xep.FormField("announcement", "text-multi", "Announcement"))), nil
}

func (m *Module) announce(ctx context.Context, requester jid.JID, v module.FormValues) (*module.CommandResult, error) {
	n, err := m.svc.Announce(ctx, domainOf(requester), v.Get("subject"), text(v, "announcement"))
	if err != nil {
		return nil, cmdErr(err)
	}
	return done(fmt.Sprintf("Announcement sent to %d session(s)", n)), nil
}

func (m *Module) formWelcome(ctx context.Context, _ jid.JID) (*wire.Element, error) {
	cur, err := m.svc.WelcomeMessage(ctx)
	if err != nil {
		return nil, err
	}
	return adminForm("Setting the welcome message", "New accounts receive this message.",
		xep.FormField("welcome", "text-multi", "Welcome message", strings.Split(cur, "\n")...)), nil
}

func (m *Module) setWelcome(ctx context.Context, _ jid.JID, v module.FormValues) (*module.CommandResult, error) {
	if err := m.svc.SetWelcomeMessage(ctx, strings.TrimSpace(text(v, "welcome"))); err != nil {
		return nil, cmdErr(err)
	}
	return done("Welcome message saved"), nil
}

func (m *Module) deleteWelcome(ctx context.Context, _ jid.JID, _ module.FormValues) (*module.CommandResult, error) {
	if err := m.svc.SetWelcomeMessage(ctx, ""); err != nil {
		return nil, cmdErr(err)
	}
	return done("Welcome message deleted"), nil
}

// invitationResult is the XEP-0401 §3.1 result form.
func invitationResult(inv Invitation) *module.CommandResult {
	x := resultForm(xep.NSInvitation,
		xep.FormField("uri", "text-single", "Invitation URI", inv.URI))
	if inv.Landing != "" {
		x.Add(xep.FormField("landing-url", "text-single", "Invitation web page", inv.Landing))
	}
	x.Add(xep.FormField("expire", "text-single", "Valid until", inv.Expires.UTC().Format(time.RFC3339)))
	note := "Share this link: " + inv.URI
	if inv.Landing != "" {
		note = "Share this link: " + inv.Landing
	}
	return &module.CommandResult{Note: note, Form: x}
}

func (m *Module) invite(ctx context.Context, requester jid.JID, _ module.FormValues) (*module.CommandResult, error) {
	inv, err := m.svc.CreateInvite(ctx, InviteRequest{Domain: requester.Domainpart(), Inviter: requester.Bare().String()})
	if err != nil {
		return nil, cmdErr(err)
	}
	return invitationResult(inv), nil
}

func (m *Module) formCreateAccount(context.Context, jid.JID) (*wire.Element, error) {
	x := xep.Form("form", xep.NSInvite+"#create-account", "Create an account invitation")
	x.Add(wire.NewElement(xep.NSDataForms, "instructions").AddText(
		"Choose the username of the new account, or leave it empty to let the invited person choose."))
	return x.Add(
		xep.FormField("username", "text-single", "Username (optional)"),
		xep.FormField("roster-subscription", "boolean", "Add me as a contact of the new account", "0"),
		xep.FormField("admin", "boolean", "Make the new account an administrator", "0"),
		xep.FormField("uses", "text-single", "How many accounts this invitation may create", "1"),
		xep.FormField("ttl", "text-single", "Valid for (e.g. 24h, 7d)", "7d")), nil
}

// ParseTTL reads a validity such as "36h", "30m" or "7d".
func ParseTTL(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n < 0 {
			return 0, badInput("%q is not a validity such as 7d or 36h", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	t, err := time.ParseDuration(s)
	if err != nil || t < 0 {
		return 0, badInput("%q is not a validity such as 7d or 36h", s)
	}
	return t, nil
}

func boolValue(s string) bool { return s == "1" || s == "true" }

func (m *Module) createAccount(ctx context.Context, requester jid.JID, v module.FormValues) (*module.CommandResult, error) {
	ttl, err := ParseTTL(v.Get("ttl"))
	if err != nil {
		return nil, cmdErr(err)
	}
	uses := 1
	if u := strings.TrimSpace(v.Get("uses")); u != "" {
		if uses, err = strconv.Atoi(u); err != nil {
			return nil, cmdErr(badInput("uses: %q is not a number", u))
		}
	}
	req := InviteRequest{Domain: requester.Domainpart(), Username: v.Get("username"), Admin: boolValue(v.Get("admin")),
		TTL: ttl, Uses: uses}
	if boolValue(v.Get("roster-subscription")) {
		req.Inviter = requester.Bare().String()
	}
	inv, err := m.svc.CreateInvite(ctx, req)
	if err != nil {
		return nil, cmdErr(err)
	}
	return invitationResult(inv), nil
}

func (m *Module) formOwnPassword(context.Context, jid.JID) (*wire.Element, error) {
	x := xep.Form("form", "", "Change my password")
	return x.Add(xep.Required(xep.FormField("password", "text-private", "New password")),
		xep.Required(xep.FormField("password-verify", "text-private", "Retype the new password"))), nil
}

func (m *Module) ownPassword(ctx context.Context, requester jid.JID, v module.FormValues) (*module.CommandResult, error) {
	if v.Get("password") != v.Get("password-verify") {
		return nil, module.Errorf(wire.ErrNotAcceptable, "the passwords do not match")
	}
	if _, err := m.svc.SetPassword(ctx, requester.Bare().String(), v.Get("password")); err != nil {
		return nil, cmdErr(err)
	}
	return done("Your password was changed"), nil
}

func (m *Module) ownSessions(_ context.Context, requester jid.JID, _ module.FormValues) (*module.CommandResult, error) {
	sess, err := m.svc.UserSessions(requester.Bare().String())
	if err != nil {
		return nil, cmdErr(err)
	}
	return &module.CommandResult{Form: resultForm("",
		xep.FormField("sessions", "jid-multi", "Your sessions", sess...))}, nil
}

func (m *Module) formDeleteOwn(context.Context, jid.JID) (*wire.Element, error) {
	x := xep.Form("form", "", "Delete my account")
	x.Add(wire.NewElement(xep.NSDataForms, "instructions").AddText(
		"This deletes your account with your contacts, messages and files. It cannot be undone."))
	return x.Add(xep.Required(xep.FormField("confirm", "boolean", "Yes, delete my account", "0"))), nil
}

func (m *Module) deleteOwn(ctx context.Context, requester jid.JID, v module.FormValues) (*module.CommandResult, error) {
	if !boolValue(v.Get("confirm")) {
		return nil, module.Errorf(wire.ErrNotAcceptable, "tick the confirmation to delete your account")
	}
	bare := requester.Bare().String()
	if err := m.svc.deleteAccount(ctx, bare); err != nil {
		return nil, cmdErr(err)
	}
	// XEP-0077 §3.2 style: the reply first, then the streams end.
	return &module.CommandResult{Note: "Your account was deleted", After: func() {
		m.svc.endSessions(bare, "the account has been removed")
	}}, nil
}
