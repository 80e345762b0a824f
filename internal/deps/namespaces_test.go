package deps

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/parley-xmpp/parley/wire"
)

// nsLike matches strings that look like XML namespaces of XMPP.
var nsLike = regexp.MustCompile(`^(urn:xmpp:|urn:ietf:params:xml:ns:xmpp|http://jabber\.org/(protocol|features|network)/|jabber:|vcard-temp|storage:|eu\.siacs\.conversations\.axolotl)`)

// TestNamespacesLiveHere fails for a namespace spelled out in Go code
// outside xep: a string literal equal to one of xep's (or wire's)
// namespaces, or a constant or variable declared with a namespace-like
// literal. Use (or add) the constant here instead. wire (which xep
// imports) and the storage backends (which may import neither: their SQL
// recognizes encrypted messages by namespace) are left out, and so are
// tests, whose stanzas are written out on purpose.
func TestNamespacesLiveHere(t *testing.T) {
	known := map[string]bool{wire.NSClient: true, wire.NSServer: true}
	root := filepath.Join("..", "..")
	fset := token.NewFileSet()
	xepFiles, err := parser.ParseDir(fset, filepath.Join(root, "xep"), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range xepFiles["xep"].Files {
		ast.Inspect(f, func(n ast.Node) bool {
			if vs, ok := n.(*ast.ValueSpec); ok {
				for _, v := range vs.Values {
					if lit, ok := v.(*ast.BasicLit); ok && lit.Kind == token.STRING {
						s, _ := strconv.Unquote(lit.Value)
						known[s] = true
					}
				}
			}
			return true
		})
	}
	if len(known) < 50 {
		t.Fatalf("read only %d namespaces from xep", len(known))
	}
	files := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() && path != root {
			switch {
			case rel == "xep", rel == "wire", rel == "storage", strings.HasPrefix(rel, "storage"+string(filepath.Separator)),
				strings.HasPrefix(d.Name(), "."), d.Name() == "node_modules", d.Name() == "testdata":
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		files++
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.ImportSpec:
				return false
			case *ast.ValueSpec:
				for _, v := range n.Values {
					if lit, ok := v.(*ast.BasicLit); ok && lit.Kind == token.STRING {
						if s, _ := strconv.Unquote(lit.Value); nsLike.MatchString(s) && !known[s] {
							t.Errorf("%s: namespace %q declared outside xep: add it to xep and use the constant", fset.Position(lit.Pos()), s)
						}
					}
				}
			case *ast.BasicLit:
				if n.Kind == token.STRING {
					if s, _ := strconv.Unquote(n.Value); known[s] {
						t.Errorf("%s: %q is spelled out: use the constant of xep (or wire)", fset.Position(n.Pos()), s)
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 100 {
		t.Fatalf("looked into only %d files", files)
	}
}
