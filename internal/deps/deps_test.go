// Package deps keeps the import rules of ARCHITECTURE.md.
package deps

import (
	"os/exec"
	"strings"
	"testing"
)

const mod = "github.com/parley-xmpp/parley/"

// allowed lists, per package, the project packages it may import.
// Feature modules share one rule; "*" means anything.
var allowed = map[string][]string{
	"wire":                {},
	"netlimit":            {},
	"xep":                 {"wire"},
	"module":              {"wire"},
	"storage":             {"wire"},
	"storage/groupcommit": {},
	"storage/sqlite":      {"storage", "storage/groupcommit"},
	"storage/storagetest": {"storage"},
	"storage/pg":          {"storage", "storage/groupcommit"},
	"mamquery":            {"module", "storage", "wire", "xep"},
	"auth":                {"storage", "netlimit"},
	"router":              {"wire", "xep", "module"},
	"sm":                  {"wire", "module", "xep"},
	"c2s":                 {"wire", "xep", "auth", "sm", "router", "module", "netlimit"},
	"s2s":                 {"wire", "xep", "auth", "router", "module", "netlimit"},
	"component":           {"wire", "xep", "router", "module", "netlimit"},
	"admin":               {"module", "storage", "wire", "xep", "abuse"},
	"abuse":               {"module", "storage", "wire", "xep"},
	"adminapi":            {"admin", "storage"},
	"invitepage":          {"admin"},
	"cluster":             {"wire", "xep", "router", "module", "sm"},
	"webclient":           {},
	// proxy65 is a feature module with a listener of its own (SOCKS5):
	// it shares the accept loop and write deadlines of netlimit.
	"proxy65":               {"module", "storage", "wire", "xep", "netlimit"},
	"server":                {"*"},
	"cmd/parley":            {"*"},
	"cmd/parley-storebench": {"*"},
	"cmd/parley-bench":      {"*"},
}

var featureModules = []string{"im", "basic", "register", "adhoc", "carbons", "mam", "push", "pep", "omemo", "muc", "upload", "csi", "private", "avatar", "extdisco", "lastactivity"}

func TestImportRules(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, mod+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, f := range featureModules {
		allowed[f] = []string{"module", "storage", "wire", "xep", "mamquery"}
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(fields[0], mod)
		if strings.HasPrefix(pkg, "internal/") || strings.HasPrefix(pkg, "test/") {
			continue // test helpers may import anything
		}
		rule, ok := allowed[pkg]
		if !ok {
			t.Errorf("package %s has no import rule: add it to ARCHITECTURE.md and this test", pkg)
			continue
		}
		for _, imp := range fields[1:] {
			if strings.Contains(imp, "spf13/viper") && pkg != "cmd/parley" {
				t.Errorf("%s imports viper; only cmd/parley may", pkg)
			}
			if strings.Contains(imp, "jackc/pgx") && pkg != "storage/pg" {
				t.Errorf("%s imports pgx; only storage/pg may", pkg)
			}
			if !strings.HasPrefix(imp, mod) {
				continue
			}
			dep := strings.TrimPrefix(imp, mod)
			if !permitted(rule, dep) {
				t.Errorf("%s must not import %s (allowed: %v)", pkg, dep, rule)
			}
		}
	}
}

func permitted(rule []string, dep string) bool {
	for _, r := range rule {
		if r == "*" || r == dep {
			return true
		}
	}
	return false
}
