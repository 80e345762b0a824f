package pep

import (
	"cmp"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"hash"
	"slices"
	"strings"

	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

// capsHash returns the hash function named by a XEP-0115 'hash'
// attribute (IANA hash function textual names), or nil.
func capsHash(name string) func() hash.Hash {
	switch name {
	case "sha-1":
		return sha1.New
	case "sha-256":
		return sha256.New
	case "sha-512":
		return sha512.New
	}
	return nil
}

// verifyCaps reports whether the disco#info <query/> hashes to ver with
// the named hash function (XEP-0115 §5.1 and §5.4).
func verifyCaps(hashName, ver string, info *wire.Element) bool {
	h := capsHash(hashName)
	if h == nil || info == nil {
		return false
	}
	s, ok := capsString(info)
	if !ok {
		return false
	}
	d := h()
	d.Write([]byte(s))
	return base64.StdEncoding.EncodeToString(d.Sum(nil)) == ver
}

// capsString builds the verification string S of XEP-0115 §5.1. It
// reports false for responses §5.4 says must not be accepted (duplicate
// identities or features, or malformed extension forms).
func capsString(info *wire.Element) (string, bool) {
	var ids []string
	for _, e := range info.ChildrenNamed(xep.NSDiscoInfo, "identity") {
		ids = append(ids, e.AttrValue("category")+"/"+e.AttrValue("type")+"/"+e.Lang()+"/"+e.AttrValue("name"))
	}
	var feats []string
	for _, e := range info.ChildrenNamed(xep.NSDiscoInfo, "feature") {
		feats = append(feats, e.AttrValue("var"))
	}
	if hasDup(ids) || hasDup(feats) {
		return "", false
	}
	// Identities sort by category, then type, then lang, then name.
	slices.SortFunc(ids, func(a, b string) int {
		pa, pb := strings.SplitN(a, "/", 4), strings.SplitN(b, "/", 4)
		for i := range 4 {
			if c := cmp.Compare(pa[i], pb[i]); c != 0 {
				return c
			}
		}
		return 0
	})
	slices.Sort(feats)
	var b strings.Builder
	for _, id := range ids {
		b.WriteString(id + "<")
	}
	for _, f := range feats {
		b.WriteString(f + "<")
	}

	type form struct {
		typ  string
		rest []capsField
	}
	var forms []form
	seenType := map[string]bool{}
	for _, x := range info.ChildrenNamed(xep.NSDataForms, "x") {
		var f form
		hidden := false
		for _, fe := range x.ChildrenNamed(xep.NSDataForms, "field") {
			var vals []string
			for _, v := range fe.ChildrenNamed(xep.NSDataForms, "value") {
				vals = append(vals, v.Text())
			}
			name := fe.AttrValue("var")
			if name == "FORM_TYPE" {
				if len(vals) != 1 {
					return "", false
				}
				f.typ, hidden = vals[0], fe.AttrValue("type") == "hidden"
				continue
			}
			slices.Sort(vals)
			s := name + "<"
			for _, v := range vals {
				s += v + "<"
			}
			f.rest = append(f.rest, capsField{name, s})
		}
		if !hidden {
			continue // §5.4: forms without a hidden FORM_TYPE are ignored
		}
		if seenType[f.typ] {
			return "", false
		}
		seenType[f.typ] = true
		slices.SortFunc(f.rest, func(a, b capsField) int { return cmp.Compare(a.name, b.name) })
		forms = append(forms, f)
	}
	slices.SortFunc(forms, func(a, b form) int { return cmp.Compare(a.typ, b.typ) })
	for _, f := range forms {
		b.WriteString(f.typ + "<")
		for _, fl := range f.rest {
			b.WriteString(fl.s)
		}
	}
	return b.String(), true
}

// capsField is one extension form field: its name and its part of S.
type capsField struct{ name, s string }

func hasDup(s []string) bool {
	c := slices.Clone(s)
	slices.Sort(c)
	return len(slices.Compact(c)) != len(s)
}

// notifyInterests returns the nodes a disco#info result asks notifications
// for ("<node>+notify" features, XEP-0060 §9.2).
func notifyInterests(info *wire.Element) map[string]bool {
	out := map[string]bool{}
	for _, e := range info.ChildrenNamed(xep.NSDiscoInfo, "feature") {
		if node, ok := strings.CutSuffix(e.AttrValue("var"), "+notify"); ok && node != "" {
			out[node] = true
		}
	}
	return out
}
