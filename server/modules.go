package server

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/abuse"
	"github.com/parley-xmpp/parley/adhoc"
	"github.com/parley-xmpp/parley/admin"
	"github.com/parley-xmpp/parley/auth"
	"github.com/parley-xmpp/parley/avatar"
	"github.com/parley-xmpp/parley/basic"
	"github.com/parley-xmpp/parley/c2s"
	"github.com/parley-xmpp/parley/carbons"
	"github.com/parley-xmpp/parley/extdisco"
	"github.com/parley-xmpp/parley/im"
	"github.com/parley-xmpp/parley/lastactivity"
	"github.com/parley-xmpp/parley/mam"
	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/muc"
	"github.com/parley-xmpp/parley/omemo"
	"github.com/parley-xmpp/parley/pep"
	"github.com/parley-xmpp/parley/private"
	"github.com/parley-xmpp/parley/push"
	"github.com/parley-xmpp/parley/register"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/upload"
	"github.com/parley-xmpp/parley/wire"
)

// buildModules is the one ordered list of modules. Hook order follows this
// list (CoreDNS plugin.cfg style): blocking and presence (im) first, so a
// blocked stanza never reaches the archive or carbons.
func buildModules(cfg Config, store storage.Store, reg *module.Registry, log *slog.Logger, secret []byte, httpsBase func(domain string) string) ([]module.Module, *upload.Module, *admin.Service, error) {
	ctx, cancel := context.WithTimeout(context.Background(), uploadCheckTimeout)
	defer cancel()
	blobs, err := OpenUploadBlobs(ctx, cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	if s3, ok := blobs.(*upload.S3Blobs); ok {
		log.Info("upload: files are stored in S3", "bucket", s3.Describe(), "prefix", cfg.Upload.S3.Prefix)
	}
	up := upload.New(upload.Config{
		Settings: cfg.Upload,
		Domains:  cfg.Hosts,
		Secret:   secret,
		BaseURLFunc: func(domain string) string {
			if cfg.Upload.BaseURL != "" {
				return cfg.Upload.BaseURL
			}
			return httpsBase(domain) + "/upload"
		},
		Logger: log,
	}, store, blobs)
	var adm *admin.Service
	mucMod := newMUC(cfg, store, log, secret, func(ctx context.Context, bare string) bool { return adm.IsAdmin(ctx, bare) })
	// Accounts are deleted through the registry, so that every module's
	// OnDeleteAccount hook runs (uploads delete the files, …).
	accounts := deletingAccounts{Accounts: store, reg: reg}
	derive := func(password string) ([]storage.SCRAMCredential, error) {
		return auth.DeriveCredentials(password, cfg.Auth.Iterations)
	}
	adm = NewAdmin(cfg, store, accounts, log, httpsBase)
	var privMod *private.Module
	var avatarMod *avatar.Module
	pepMod := pep.New(pep.Config{NodeDefaults: omemo.NodeDefaults, Logger: log,
		MaxAccountBytes: cfg.Limits.MaxPEPBytes, Usage: store,
		OnPublish: func(ctx context.Context, owner, node, id string, payload []byte) {
			privMod.OnPEPPublish(ctx, owner, node, id, payload)
			avatarMod.OnPEPPublish(ctx, owner, node, id, payload)
		},
		OnRetract: func(ctx context.Context, owner, node, id string) {
			privMod.OnPEPRetract(ctx, owner, node, id)
			avatarMod.OnPEPRetract(ctx, owner, node, id)
		},
	}, store, store, store)
	privMod = private.New(private.Config{PEP: pepMod, Logger: log, MaxNamespaces: cfg.Limits.MaxPrivateNamespaces,
		MaxAccountBytes: cfg.Limits.MaxPrivateBytes, Usage: store}, store)
	// XEP-0398: PEP avatars ↔ vCard PHOTO, and the hash in presence.
	avatarMod = avatar.New(avatar.Config{PEP: pepMod, Logger: log}, store)
	mods := []module.Module{
		// push only queues work in its hooks; before im so that its
		// Undeliverable hook sees what im then stores offline.
		push.NewDurable(push.Config{Settings: cfg.Push, Logger: log}, store, store),
		// pep before im: im's presence hook ends the chain, and pep must
		// see a resource come online to send it the last items.
		pepMod,
		// XEP-0049 private storage, with bookmarks kept in sync with PEP
		// (XEP-0411).
		privMod,
		// avatar before im: it adds the XEP-0153 hash to presence that
		// im then broadcasts.
		avatarMod,
		// lastactivity before im: it sees unavailable presence before im
		// ends the chain, and sessions before im forgets their presence.
		lastactivity.New(lastactivity.Config{Logger: log}, store, store),
		// abuse before im: a stranger's message is refused before it
		// reaches the archive, carbons or offline storage, and a block
		// request's report is taken before im handles the block.
		newAbuse(cfg.Abuse, store, log),
		// XEP-0379 contact invitations: a subscription request with the
		// inviter's token is pre-approved before im handles it.
		admin.NewPreauthModule(adm),
		im.New(im.Config{Limits: cfg.Limits.Limits, Usage: store, Logger: log}, store, store, store),
		// omemo after im (presence) and before mam: refused messages are
		// never archived or copied.
		omemo.New(omemo.Config{Settings: cfg.OMEMO, Logger: log}),
		// mam before carbons: copies carry the stanza-id the archive adds.
		mam.New(mam.Config{Settings: cfg.MAM, MaxAccountBytes: cfg.Limits.MaxArchiveBytes, Usage: store,
			SharedArchive: cfg.Cluster.Enabled, Logger: log}, store, store),
		carbons.New(carbons.Config{Logger: log}),
		// XEP-0215: STUN/TURN servers and TURN credentials for calls.
		extdisco.New(extdisco.Config{Settings: cfg.ExternalServices, Logger: log}),
		basic.New(basic.Config{ServerName: "Parley", Version: Version, Contact: cfg.Contact.Fields(), Logger: log,
			OnVCardSet: avatarMod.OnVCardSet}, store),
		register.New(register.Config{
			Settings:     cfg.Registration,
			Derive:       derive,
			Domains:      cfg.Hosts,
			Invites:      registerInvites{adm},
			OnRegistered: adm.Welcome,
			Logger:       log,
		}, accounts),
		up,
	}
	if mucMod != nil {
		mods = append(mods, mucMod)
	}
	mods = append(mods,
		// XEP-0050 ad-hoc commands, and the commands of the admin
		// service (XEP-0133, invitations, own account).
		adhoc.New(log),
		admin.NewModule(adm),
	)
	return mods, up, adm, nil
}

// deletingAccounts is store with DeleteAccount going through the
// registry's one account deletion (module hooks, then the store).
type deletingAccounts struct {
	storage.Accounts
	reg *module.Registry
}

func (a deletingAccounts) DeleteAccount(ctx context.Context, bare string) error {
	j, err := jid.Parse(bare)
	if err != nil {
		return fmt.Errorf("deleting account %q: %w", bare, err)
	}
	if err := a.reg.DeleteAccount(ctx, j); errors.Is(err, module.ErrNoAccount) {
		return storage.ErrNotFound
	} else if err != nil {
		return err
	}
	return nil
}

// newMUC builds the multi-user chat service from the muc section, or nil
// when it is disabled.
func newMUC(cfg Config, store storage.Store, log *slog.Logger, secret []byte, isAdmin func(context.Context, string) bool) *muc.Module {
	if !cfg.MUC.Enabled {
		return nil
	}
	// Occupant ids (XEP-0421) are keyed by a secret of their own, derived
	// from the server secret: stable across restarts and nodes.
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("parley muc occupant-id"))
	return muc.New(muc.Config{
		Settings:       cfg.MUC,
		Domains:        cfg.Hosts,
		Secret:         mac.Sum(nil),
		IsAdmin:        isAdmin,
		MAMPageSize:    50,
		MAMMaxPageSize: cfg.MAM.MaxPageSize,
		Logger:         log,
	}, store)
}

// uploadCheckTimeout bounds the check of the S3 bucket at startup.
const uploadCheckTimeout = 20 * time.Second

// OpenUploadBlobs opens the store of uploaded files that upload.backend
// names: data_dir/upload, or the S3 bucket (checked: reachable, bucket
// exists, credentials accepted; errors name the key at fault). The server
// and `parley upload stats|prune` use it.
func OpenUploadBlobs(ctx context.Context, cfg Config) (upload.Blobs, error) {
	if cfg.Upload.Backend == "s3" {
		return upload.NewS3Blobs(ctx, cfg.Upload.S3)
	}
	blobs, err := upload.NewDiskBlobs(filepath.Join(cfg.DataDir, "upload"))
	if err != nil {
		return nil, fmt.Errorf("data_dir: upload directory: %w", err)
	}
	return blobs, nil
}

// registrationOf finds the XEP-0077 module for pre-authentication requests.
func registrationOf(mods []module.Module) c2s.Registration {
	for _, m := range mods {
		if r, ok := m.(*register.Module); ok {
			return r
		}
	}
	return nil
}

// NewAdmin returns the admin service for cfg on store (accounts deletes
// accounts; nil: the store). httpsBase gives the public https base URL of
// a domain, for invitation pages (nil: none unless invites.base_url).
func NewAdmin(cfg Config, store storage.Store, accounts storage.Accounts, log *slog.Logger, httpsBase func(string) string) *admin.Service {
	return admin.New(admin.Config{
		Hosts: cfg.Hosts,
		Derive: func(password string) ([]storage.SCRAMCredential, error) {
			return auth.DeriveCredentials(password, cfg.Auth.Iterations)
		},
		Accounts: accounts,
		InvitePage: func(domain, token string) string {
			switch {
			case cfg.Invites.BaseURL != "":
				return strings.TrimSuffix(cfg.Invites.BaseURL, "/") + "/" + token
			case httpsBase != nil:
				return httpsBase(domain) + "/invite/" + token
			}
			return ""
		},
		Policy: AdminPolicy(cfg),
		Logger: log,
	}, store)
}

// ConfiguredHTTPSBase is the public https base URL of a domain from the
// configuration alone (the CLI, with no listener bound): the https
// listener's port, or 443 when it is disabled (a reverse proxy).
func ConfiguredHTTPSBase(cfg Config) func(string) string {
	return func(domain string) string {
		if _, port, err := net.SplitHostPort(cfg.Listen.HTTPS); err == nil && port != "" && port != "0" {
			return "https://" + domain + ":" + port
		}
		return "https://" + domain
	}
}

// AdminPolicy is the reloadable part of the admin configuration.
func AdminPolicy(cfg Config) admin.Policy {
	return admin.Policy{Admins: cfg.Admins, UsersCanInvite: cfg.Invites.UsersCanInvite, InviteTTL: cfg.Invites.TTL}
}

// registerInvites gives in-band registration the admin service's
// invitations, with errors a client understands.
type registerInvites struct{ svc *admin.Service }

func (r registerInvites) ValidInvite(ctx context.Context, token, domain string) (string, error) {
	info, err := r.svc.CheckInvite(ctx, token)
	if err == nil && info.Domain != domain {
		err = admin.ErrInvalidInvite
	}
	return info.Username, inviteError(err)
}

func (r registerInvites) RegisterWithInvite(ctx context.Context, token, domain, username, password string) (string, error) {
	bare, err := r.svc.RegisterWithInvite(ctx, token, domain, username, password)
	return bare, inviteError(err)
}

func (r registerInvites) UsernameReserved(ctx context.Context, bare string) (bool, error) {
	return r.svc.UsernameReserved(ctx, bare)
}

func inviteError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, admin.ErrInvalidInvite):
		return module.Errorf(wire.ErrItemNotFound, "The provided token is invalid or expired")
	case errors.Is(err, admin.ErrUserExists):
		return module.Errorf(wire.ErrConflict, "this username is taken")
	case errors.Is(err, admin.ErrWrongUsername):
		return module.Errorf(wire.ErrNotAllowed, "this invitation is for another username")
	case errors.Is(err, admin.ErrBadJID):
		return module.Errorf(wire.ErrNotAcceptable, "this username is not allowed")
	case errors.Is(err, admin.ErrBadPassword):
		return module.Errorf(wire.ErrNotAcceptable, "this password is not allowed")
	}
	return err
}

func newAbuse(s abuse.Settings, store storage.Store, log *slog.Logger) *abuse.Module {
	c := s.ModuleConfig()
	c.Logger = log
	return abuse.New(c, store)
}
