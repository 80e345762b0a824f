package im

import "testing"

// TestZeroLimitsAreTheFileDefaults: a module made without limits enforces
// what the configuration file defaults to, so the two cannot drift apart
// again (the module once stored 500 offline messages and 1000 roster
// items where the file said 1000 and 2000).
func TestZeroLimitsAreTheFileDefaults(t *testing.T) {
	if got := *New(Config{}, nil, nil, nil).limit(); got != DefaultLimits() {
		t.Fatalf("zero Config enforces %+v, the file's defaults are %+v", got, DefaultLimits())
	}
	if p := DefaultLimits().Problems(); len(p) != 0 {
		t.Fatalf("defaults have problems: %v", p)
	}
	if p := (Limits{MaxOfflineMessages: 0, MaxRosterItems: -1, MaxBlockItems: 1, MaxOfflineBytes: 1}).Problems(); len(p) != 2 {
		t.Fatalf("problems of zero and negative limits: %v", p)
	}
}
