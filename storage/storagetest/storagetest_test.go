package storagetest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"slices"
	"testing"
)

// TestSuitesCoverStore fails while a repository of storage.Store has no
// contract suite in RunAll, so that a new one cannot reach both backends
// untested.
func TestSuitesCoverStore(t *testing.T) {
	pkgs, err := parser.ParseDir(token.NewFileSet(), "..", nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	var repos []string
	for _, f := range pkgs["storage"].Files {
		ast.Inspect(f, func(n ast.Node) bool {
			ts, ok := n.(*ast.TypeSpec)
			if !ok || ts.Name.Name != "Store" {
				return true
			}
			for _, m := range ts.Type.(*ast.InterfaceType).Methods.List {
				if id, ok := m.Type.(*ast.Ident); ok && len(m.Names) == 0 {
					repos = append(repos, id.Name)
				}
			}
			return false
		})
	}
	if len(repos) < 10 {
		t.Fatalf("found only %v embedded in storage.Store", repos)
	}
	for _, r := range repos {
		if !slices.ContainsFunc(suites, func(s suite) bool { return slices.Contains(s.repos, r) }) {
			t.Errorf("storage.Store embeds %s, which no suite of RunAll covers: add its contract to storage/storagetest", r)
		}
	}
}
