package c2s

import (
	"fmt"
	"time"
)

// Settings is the c2s section of the configuration file (the YAML keys are
// the mapstructure tags); server.Config composes it, so its defaults and
// checks are these and nowhere else. The server copies it into Config,
// with the limits and auth values that client connections share with
// other listeners.
type Settings struct {
	// PingInterval: the server pings a client silent for this long
	// (XEP-0199) and closes it when the ping is not answered in PingTimeout.
	PingInterval time.Duration `mapstructure:"ping_interval"`
	PingTimeout  time.Duration `mapstructure:"ping_timeout"`
	// ResumeTimeout: how long a stream management session (XEP-0198) stays
	// resumable after its connection drops; 0 disables resumption.
	ResumeTimeout time.Duration `mapstructure:"resume_timeout"`
	// MaxUnacked and MaxUnackedBytes: stanzas kept for a client until it
	// acknowledges them.
	MaxUnacked      int `mapstructure:"max_unacked"`
	MaxUnackedBytes int `mapstructure:"max_unacked_bytes"`
	// CSIHoldBytes bounds what is held back for an inactive client
	// (XEP-0352) before it is sent anyway.
	CSIHoldBytes int `mapstructure:"csi_hold_bytes"`
}

// DefaultSettings are the defaults of the c2s section.
func DefaultSettings() Settings {
	return Settings{PingInterval: 5 * time.Minute, PingTimeout: 60 * time.Second,
		ResumeTimeout: 5 * time.Minute, MaxUnacked: 5000, MaxUnackedBytes: 8 << 20, CSIHoldBytes: 512 << 10}
}

// Problems returns what is wrong with s, each as "key: problem" with the
// key relative to the c2s section.
func (s Settings) Problems() []string {
	var p []string
	if s.PingInterval < 0 || s.PingTimeout <= 0 {
		p = append(p, "ping_interval: expected positive durations for c2s.ping_interval (0 disables) and c2s.ping_timeout")
	}
	if s.ResumeTimeout < 0 {
		p = append(p, "resume_timeout: expected a duration such as 5m (0s disables resumption)")
	}
	for _, v := range []struct {
		key      string
		got, min int
	}{{"max_unacked", s.MaxUnacked, 16}, {"max_unacked_bytes", s.MaxUnackedBytes, 1 << 20}, {"csi_hold_bytes", s.CSIHoldBytes, 16 << 10}} {
		if v.got < v.min {
			p = append(p, fmt.Sprintf("%s: expected a number >= %d, got %d", v.key, v.min, v.got))
		}
	}
	return p
}

// WebSocketSettings is the websocket section: the RFC 7395 endpoint.
type WebSocketSettings struct {
	// Origins allowed to open a WebSocket; empty allows any (authentication
	// is SASL, not cookies).
	Origins []string `mapstructure:"origins"`
}
