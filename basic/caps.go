package basic

import (
	"cmp"
	"crypto/sha1"
	"encoding/base64"
	"slices"
	"strings"

	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

// CapsVer computes the XEP-0115 §5.1 verification string (SHA-1, base64)
// of a disco#info <query/> element: its identities, features and extended
// information forms (XEP-0128). Forms without a hidden FORM_TYPE field are
// left out, as §5.4 tells receivers to ignore them.
func CapsVer(info *wire.Element) string {
	sum := sha1.Sum([]byte(capsInput(info)))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// capsInput builds the string S of XEP-0115 §5.1.
func capsInput(info *wire.Element) string {
	type ident struct{ category, typ, lang, name string }
	var ids []ident
	for _, e := range info.ChildrenNamed(xep.NSDiscoInfo, "identity") {
		ids = append(ids, ident{e.AttrValue("category"), e.AttrValue("type"), e.Lang(), e.AttrValue("name")})
	}
	// i;octet collation is Go's string order. Compare field by field, not
	// the joined strings, so "a/..." and "a-b/..." sort by category.
	slices.SortFunc(ids, func(a, b ident) int {
		return cmp.Or(strings.Compare(a.category, b.category), strings.Compare(a.typ, b.typ),
			strings.Compare(a.lang, b.lang), strings.Compare(a.name, b.name))
	})
	var s strings.Builder
	for _, id := range ids {
		s.WriteString(id.category + "/" + id.typ + "/" + id.lang + "/" + id.name + "<")
	}

	var features []string
	for _, e := range info.ChildrenNamed(xep.NSDiscoInfo, "feature") {
		features = append(features, e.AttrValue("var"))
	}
	slices.Sort(features)
	for _, f := range features {
		s.WriteString(f + "<")
	}

	type field struct {
		name   string
		values []string
	}
	type form struct {
		typ    string
		fields []field
	}
	var forms []form
	for _, x := range info.ChildrenNamed(xep.NSDataForms, "x") {
		var f form
		found := false
		for _, fe := range x.ChildrenNamed(xep.NSDataForms, "field") {
			var vals []string
			for _, v := range fe.ChildrenNamed(xep.NSDataForms, "value") {
				vals = append(vals, v.Text())
			}
			if fe.AttrValue("var") == "FORM_TYPE" {
				if fe.AttrValue("type") != "hidden" || len(vals) == 0 {
					break
				}
				f.typ, found = vals[0], true
				continue
			}
			slices.Sort(vals)
			f.fields = append(f.fields, field{fe.AttrValue("var"), vals})
		}
		if !found {
			continue
		}
		slices.SortFunc(f.fields, func(a, b field) int { return strings.Compare(a.name, b.name) })
		forms = append(forms, f)
	}
	slices.SortFunc(forms, func(a, b form) int { return strings.Compare(a.typ, b.typ) })
	for _, f := range forms {
		s.WriteString(f.typ + "<")
		for _, fl := range f.fields {
			s.WriteString(fl.name + "<")
			for _, v := range fl.values {
				s.WriteString(v + "<")
			}
		}
	}
	return s.String()
}
