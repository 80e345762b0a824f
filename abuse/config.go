package abuse

import (
	"fmt"
	"time"

	"mellium.im/xmpp/jid"
)

// Settings is the abuse section of the configuration file (the YAML keys
// are the mapstructure tags); server.Config composes it.
type Settings struct {
	// BlockStrangers is the server default for refusing messages and IQ
	// requests from JIDs that are neither in the recipient's roster nor
	// written to by them; each user can change it for their account (ad-hoc
	// command "Block messages from strangers").
	BlockStrangers bool `mapstructure:"block_strangers"`
	// StrangersAllowLocal lets users of this server through the filter.
	StrangersAllowLocal bool `mapstructure:"strangers_allow_local"`
	// ReportTo are JIDs that get every XEP-0377 spam report as a message.
	ReportTo []string `mapstructure:"report_to"`
	// MaxReportsPerUser bounds the reports one account can have stored.
	MaxReportsPerUser int `mapstructure:"max_reports_per_user"`
	// SuspensionCheck is how often live sessions are checked against
	// suspensions made elsewhere (CLI, another node).
	SuspensionCheck time.Duration `mapstructure:"suspension_check"`
}

// DefaultSettings are the defaults of the abuse section.
func DefaultSettings() Settings {
	return Settings{MaxReportsPerUser: DefaultMaxReportsPerUser, SuspensionCheck: DefaultCheckInterval}
}

// Problems returns what is wrong with s, each as "key: problem" with the
// key relative to the abuse section.
func (s Settings) Problems() []string {
	var p []string
	for i, r := range s.ReportTo {
		if j, err := jid.Parse(r); err != nil || j.Domainpart() == "" {
			p = append(p, fmt.Sprintf("report_to[%d]: %q is not a JID", i, r))
		}
	}
	if s.MaxReportsPerUser < 1 {
		p = append(p, fmt.Sprintf("max_reports_per_user: expected a number >= 1, got %d", s.MaxReportsPerUser))
	}
	if s.SuspensionCheck < time.Second {
		p = append(p, "suspension_check: expected a duration of at least 1s, such as 10s")
	}
	return p
}

// ModuleConfig turns the settings into the module's Config.
func (s Settings) ModuleConfig() Config {
	return Config{CheckInterval: s.SuspensionCheck, BlockStrangers: s.BlockStrangers, StrangersAllowLocal: s.StrangersAllowLocal,
		ReportTo: s.ReportTo, MaxReportsPerUser: s.MaxReportsPerUser}
}
