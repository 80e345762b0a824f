package webclient

// Settings is the web_client section of the configuration file (the YAML
// keys are the mapstructure tags); server.Config composes it.
type Settings struct {
	// Enabled serves it at /chat/ (and redirects / there) on the http and
	// https listeners.
	Enabled bool `mapstructure:"enabled"`
}

// DefaultSettings are the defaults of the web_client section: on.
func DefaultSettings() Settings { return Settings{Enabled: true} }
