// Package upload implements XEP-0363 HTTP File Upload
// (urn:xmpp:http:upload:0).
//
// Each virtual host gets a service host (upload.<domain> by default) that
// answers disco#info (identity store/file, the feature and the
// max-file-size form) and hands out slots to local users. A slot is a pair
// of URLs under Config.BaseURL: the PUT URL needs the Authorization header
// from the slot (an HMAC over the slot's id, owner, file name, size,
// content type and expiry), works once and only until the slot expires;
// the GET URL is the same path, unguessable (128 random bits) and ends in
// the sanitized file name.
//
// Module.Handler serves both: PUT checks the signature, the exact
// Content-Length and the Content-Type, writes the file to a temporary name
// and renames it when complete; GET and HEAD serve complete files with
// ranges, ETag, nosniff, a restrictive Content-Security-Policy and
// Content-Disposition: attachment for anything a browser could run. The
// handler takes the slot id and file name from the last two path
// segments, so it can be mounted under any prefix.
//
// Files are metadata in storage.Uploads plus bytes in a Blobs store
// (DiskBlobs: data_dir/upload). Retention: a per-user quota (complete
// files, uploads in progress and unexpired slots), an optional FileTTL
// after which files are deleted by a background sweep, Prune and
// DeleteUser for account deletion.
package upload

import (
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Defaults.
const (
	DefaultHostPrefix  = "upload."
	DefaultMaxFileSize = 100 << 20 // 100 MiB
	DefaultQuota       = 1 << 30   // 1 GiB
	DefaultSlotTTL     = 5 * time.Minute
	// abandonedAfter is how long after its slot expired an upload still in
	// progress is given before its record is swept (a slow PUT started in
	// time may take long).
	abandonedAfter = 24 * time.Hour
	maxFilenameLen = 255
)

// Settings is the upload section of the configuration file (the YAML
// keys are the mapstructure tags); server.Config composes it.
type Settings struct {
	// MaxFileSize in bytes (DefaultMaxFileSize when <= 0).
	MaxFileSize int64 `mapstructure:"max_file_size"`
	// Quota per user in bytes (DefaultQuota when 0; negative: no quota).
	Quota int64 `mapstructure:"quota"`
	// FileTTL is how long files are kept after upload (0: forever).
	FileTTL time.Duration `mapstructure:"file_ttl"`
	// BaseURL is the public URL under which Handler is reachable, without
	// trailing slash, e.g. "https://example.org:5281/upload" or, behind a
	// reverse proxy, "https://share.example.org". Slot URLs are
	// BaseURL/<id>/<file name>. Empty: the server's https listener.
	BaseURL string `mapstructure:"base_url"`
	// Backend stores the files: "disk" (data_dir/upload) or "s3" (an
	// S3-compatible bucket, configured in S3). Either way uploads and
	// downloads go through the module's Handler.
	Backend string   `mapstructure:"backend"`
	S3      S3Config `mapstructure:"s3"`
}

// DefaultSettings are the defaults of the upload section.
func DefaultSettings() Settings {
	return Settings{MaxFileSize: DefaultMaxFileSize, Quota: DefaultQuota, Backend: "disk", S3: S3Config{UseSSL: true}}
}

// Problems returns what is wrong with s, each as "key: problem" with the
// key relative to the upload section. It does no I/O.
func (s Settings) Problems() []string {
	var p []string
	if s.MaxFileSize <= 0 {
		p = append(p, "max_file_size: expected a positive number of bytes")
	}
	if s.FileTTL < 0 {
		p = append(p, "file_ttl: expected a duration such as 720h (0s keeps files)")
	}
	if u := s.BaseURL; u != "" && !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
		p = append(p, fmt.Sprintf("base_url: %q is not an http(s) URL", u))
	}
	switch s.Backend {
	case "disk":
	case "s3":
		for _, q := range s.S3.Problems() {
			p = append(p, "s3."+q)
		}
	default:
		p = append(p, fmt.Sprintf("backend: %q is not supported (expected disk or s3)", s.Backend))
	}
	return p
}

// Config configures the module: the file's settings and what the
// server wires in.
type Config struct {
	Settings
	// Domains are the virtual hosts that get an upload service; the
	// registry's domains when empty.
	Domains []string
	// HostPrefix makes a service host from a domain (DefaultHostPrefix:
	// upload.example.org).
	HostPrefix string
	// Hosts overrides the service host of individual domains (domain →
	// host, e.g. "example.org" → "share.example.org").
	Hosts map[string]string
	// BaseURLFunc, when set, is used instead of BaseURL to give the base
	// URL per virtual host (or one known only after listeners are bound).
	BaseURLFunc func(domain string) string
	// Secret keys the slot signatures. The server secret may be passed:
	// the module derives its own key from it. When empty, a random key is
	// made, so slots do not survive restarts.
	Secret []byte
	// SlotTTL is how long a PUT URL is valid (DefaultSlotTTL when <= 0).
	SlotTTL time.Duration
	// SweepInterval is how often expired files and stale slots are removed
	// (when <= 0: FileTTL/4, between one minute and one hour).
	SweepInterval time.Duration
	Logger        *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.HostPrefix == "" {
		c.HostPrefix = DefaultHostPrefix
	}
	if c.MaxFileSize <= 0 {
		c.MaxFileSize = DefaultMaxFileSize
	}
	if c.Quota == 0 {
		c.Quota = DefaultQuota
	}
	if c.SlotTTL <= 0 {
		c.SlotTTL = DefaultSlotTTL
	}
	if c.FileTTL < 0 {
		c.FileTTL = 0
	}
	if c.SweepInterval <= 0 {
		c.SweepInterval = min(max(c.FileTTL/4, time.Minute), time.Hour)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}
