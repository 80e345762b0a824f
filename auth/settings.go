package auth

import (
	"fmt"
	"time"
)

// Settings is the auth section of the configuration file (the YAML keys are
// the mapstructure tags); server.Config composes it, so its defaults and
// checks are these and nowhere else.
type Settings struct {
	RequireTLS    bool          `mapstructure:"require_tls"`
	AllowPlain    bool          `mapstructure:"allow_plain"`
	Iterations    int           `mapstructure:"iterations"`
	Timeout       time.Duration `mapstructure:"timeout"`
	MaxFailures   int           `mapstructure:"max_failures"`
	FailureWindow time.Duration `mapstructure:"failure_window"`
	// MaxDelay is the longest spacing between verified login attempts on
	// an account over MaxFailures; MaxWait the longest an attempt queues
	// for its turn before it is refused with temporary-auth-failure.
	MaxDelay time.Duration `mapstructure:"max_delay"`
	MaxWait  time.Duration `mapstructure:"max_wait"`
	// FASTTokenLifetime: how long an XEP-0484 token stays valid unused;
	// 0 disables FAST.
	FASTTokenLifetime time.Duration `mapstructure:"fast_token_lifetime"`
}

// DefaultSettings are the defaults of the auth section.
func DefaultSettings() Settings {
	return Settings{
		RequireTLS:    true,
		AllowPlain:    true,
		Iterations:    10000,
		Timeout:       30 * time.Second,
		MaxFailures:   5,
		FailureWindow: 5 * time.Minute,
		MaxDelay:      time.Minute,
		MaxWait:       20 * time.Second,
		// Prosody's default: three weeks.
		FASTTokenLifetime: 21 * 24 * time.Hour,
	}
}

// Problems returns what is wrong with s, each as "key: problem" with the
// key relative to the auth section.
func (s Settings) Problems() []string {
	var p []string
	if s.Iterations < 4096 {
		p = append(p, fmt.Sprintf("iterations: expected a number >= 4096, got %d", s.Iterations))
	}
	if s.MaxFailures < 1 {
		p = append(p, fmt.Sprintf("max_failures: expected a number >= 1, got %d", s.MaxFailures))
	}
	if s.Timeout <= 0 {
		p = append(p, "timeout: expected a positive duration such as 30s")
	}
	if s.FailureWindow <= 0 {
		p = append(p, "failure_window: expected a positive duration such as 5m")
	}
	if s.MaxDelay < time.Second {
		p = append(p, "max_delay: expected a duration of at least 1s, such as 1m")
	}
	if s.MaxWait <= 0 {
		p = append(p, "max_wait: expected a positive duration such as 20s")
	}
	if s.FASTTokenLifetime < 0 || (s.FASTTokenLifetime > 0 && s.FASTTokenLifetime < time.Hour) {
		p = append(p, "fast_token_lifetime: expected a duration of at least 1h such as 504h, or 0s to disable FAST")
	}
	return p
}
