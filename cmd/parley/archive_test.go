package main

import (
	"bufio"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/admin"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/storage/sqlite"
)

type archivedFixture struct {
	id, with, from, origin, raw string
	ts                          time.Time
}

// fillArchive creates alice@example.org with more than two pages of
// archived messages (some sharing a timestamp), a roster, a vCard and
// offline messages, through the storage interfaces. It returns the
// messages in archive order.
func fillArchive(t *testing.T, dataDir string) []archivedFixture {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, dataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	const owner = "alice@example.org"
	for _, u := range []string{owner, "bob@example.org"} {
		must(st.CreateAccount(ctx, u, []storage.SCRAMCredential{{Hash: "SHA-256", Salt: []byte{1}, Iterations: 4096,
			StoredKey: []byte("sk"), ServerKey: []byte("vk")}}))
	}
	_, err = st.UpsertRosterItem(ctx, owner, storage.RosterItem{JID: "bob@example.org", Name: "Bob & Co",
		Subscription: storage.SubBoth, Groups: []string{"Friends", "Work"}})
	must(err)
	_, err = st.UpsertRosterItem(ctx, owner, storage.RosterItem{JID: "dave@remote.example", Subscription: storage.SubNone, Ask: true})
	must(err)
	must(st.SetVCard(ctx, owner, []byte("<vCard xmlns='vcard-temp'><FN>Alice</FN></vCard>")))
	_, err = st.StoreOffline(ctx, owner, []byte("<message from='bob@example.org/x' to='alice@example.org' type='chat'><body>offline</body></message>"), time.Now(), 0)
	must(err)

	base := time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)
	n := 2*admin.ExportPage + 37
	var want []archivedFixture
	for i := range n {
		// Pairs of messages share a timestamp: paging must order by ID too.
		ts := base.Add(time.Duration(i/2) * time.Second)
		with, from, to := "bob@example.org", "bob@example.org/phone", owner+"/laptop"
		if i%3 == 0 {
			with, from, to = "carol@remote.example", owner+"/laptop", "carol@remote.example"
		}
		origin := ""
		if i%5 == 0 {
			origin = fmt.Sprintf("origin-%d", i)
		}
		raw := fmt.Sprintf(`<message from='%s' to='%s' type='chat' id='m%d'><body>msg %d &amp; &lt;"quotes"&gt; ünïcode</body></message>`, from, to, i, i)
		if i == 7 { // stored with its own namespace declaration
			raw = fmt.Sprintf(`<message xmlns='jabber:client' from='%s' to='%s' type='chat'><body>msg %d</body></message>`, from, to, i)
		}
		id, err := st.AppendArchive(ctx, owner, storage.ArchivedMessage{With: with, Timestamp: ts, OriginID: origin,
			FromFull: from, Raw: []byte(raw)})
		must(err)
		want = append(want, archivedFixture{id: id, with: with, from: from, origin: origin, raw: raw, ts: ts})
	}
	// A message of another user must not appear.
	_, err = st.AppendArchive(ctx, "bob@example.org", storage.ArchivedMessage{With: owner, Timestamp: base,
		FromFull: owner + "/laptop", Raw: []byte("<message><body>bob's</body></message>")})
	must(err)

	// Archive order is (timestamp, ID); check it against the store.
	page, err := st.QueryArchive(ctx, owner, storage.ArchiveQuery{Max: n + 10})
	must(err)
	if len(page.Messages) != n {
		t.Fatalf("store has %d messages, want %d", len(page.Messages), n)
	}
	byID := map[string]archivedFixture{}
	for _, w := range want {
		byID[w.id] = w
	}
	want = want[:0]
	for _, m := range page.Messages {
		want = append(want, byID[m.ID])
	}
	return want
}

func TestArchiveExportJSONL(t *testing.T) {
	cfgPath, dataDir := testCLIConfig(t, "")
	want := fillArchive(t, dataDir)
	c := "--config=" + cfgPath

	check := func(t *testing.T, out string) {
		t.Helper()
		sc := bufio.NewScanner(strings.NewReader(out))
		sc.Buffer(nil, 1<<20)
		i := 0
		seen := map[string]bool{}
		for sc.Scan() {
			var got map[string]any
			if err := json.Unmarshal(sc.Bytes(), &got); err != nil {
				t.Fatalf("line %d is not JSON: %v: %s", i+1, err, sc.Text())
			}
			if i >= len(want) {
				t.Fatalf("more than %d lines", len(want))
			}
			w := want[i]
			id, _ := got["id"].(string)
			if seen[id] {
				t.Fatalf("message %s exported twice", id)
			}
			seen[id] = true
			exp := map[string]any{"id": w.id, "timestamp": w.ts.Format(time.RFC3339Nano), "with": w.with,
				"from": w.from, "origin_id": w.origin, "stanza": w.raw}
			if len(got) != len(exp) {
				t.Fatalf("line %d: keys %v, want %v", i+1, got, exp)
			}
			for k, v := range exp {
				if got[k] != v {
					t.Fatalf("line %d: %s = %q, want %q", i+1, k, got[k], v)
				}
			}
			i++
		}
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
		if i != len(want) {
			t.Fatalf("%d lines, want %d", i, len(want))
		}
	}

	t.Run("stdout", func(t *testing.T) {
		r := runCLI(t, "", "archive", "export", "--user", "Alice@Example.ORG", c)
		r.ok(t, "")
		check(t, r.out)
	})
	t.Run("file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "alice.jsonl")
		r := runCLI(t, "", "archive", "export", "-u", "alice@example.org", "--format", "jsonl", "--output", path, c)
		r.ok(t, "")
		if !strings.Contains(r.err, fmt.Sprintf("exported %d message(s) of alice@example.org", len(want))) {
			t.Errorf("stderr %q", r.err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		check(t, string(b))
		ents, _ := os.ReadDir(filepath.Dir(path))
		if len(ents) != 1 {
			t.Errorf("temporary files left: %v", ents)
		}
	})
	t.Run("other user", func(t *testing.T) {
		r := runCLI(t, "", "archive", "export", "--user", "bob@example.org", c)
		r.ok(t, "")
		if strings.Count(r.out, "\n") != 1 || !strings.Contains(r.out, "bob's") {
			t.Errorf("bob's export %q", r.out)
		}
	})
}

func TestArchiveExportXEP0227(t *testing.T) {
	cfgPath, dataDir := testCLIConfig(t, "")
	want := fillArchive(t, dataDir)
	r := runCLI(t, "", "archive", "export", "--user", "alice@example.org", "--format", "xep0227", "--config="+cfgPath)
	r.ok(t, "")

	// Well-formed, and the structure of XEP-0227 with namespaces resolved.
	type message struct {
		XMLName xml.Name
		From    string `xml:"from,attr"`
		Body    string `xml:"jabber:client body"`
	}
	type result struct {
		XMLName   xml.Name
		ID        string `xml:"id,attr"`
		Forwarded struct {
			XMLName xml.Name
			Delay   struct {
				XMLName xml.Name
				Stamp   string `xml:"stamp,attr"`
			} `xml:"urn:xmpp:delay delay"`
			Message message `xml:"jabber:client message"`
		} `xml:"urn:xmpp:forward:0 forwarded"`
	}
	var doc struct {
		XMLName xml.Name `xml:"urn:xmpp:pie:0 server-data"`
		Hosts   []struct {
			JID   string `xml:"jid,attr"`
			Users []struct {
				Name   string `xml:"name,attr"`
				Roster struct {
					XMLName xml.Name
					Items   []struct {
						JID    string   `xml:"jid,attr"`
						Name   string   `xml:"name,attr"`
						Sub    string   `xml:"subscription,attr"`
						Ask    string   `xml:"ask,attr"`
						Groups []string `xml:"jabber:iq:roster group"`
					} `xml:"jabber:iq:roster item"`
				} `xml:"jabber:iq:roster query"`
				VCard struct {
					FN string `xml:"vcard-temp FN"`
				} `xml:"vcard-temp vCard"`
				Offline struct {
					Messages []message `xml:"jabber:client message"`
				} `xml:"urn:xmpp:pie:0 offline-messages"`
				Archive struct {
					Results []result `xml:"urn:xmpp:mam:2 result"`
				} `xml:"urn:xmpp:pie:0#mam archive"`
			} `xml:"urn:xmpp:pie:0 user"`
		} `xml:"urn:xmpp:pie:0 host"`
	}
	dec := xml.NewDecoder(strings.NewReader(r.out))
	for { // strict well-formedness check of the whole document
		if _, err := dec.Token(); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("not well-formed XML: %v", err)
		}
	}
	if err := xml.Unmarshal([]byte(r.out), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Hosts) != 1 || doc.Hosts[0].JID != "example.org" || len(doc.Hosts[0].Users) != 1 || doc.Hosts[0].Users[0].Name != "alice" {
		t.Fatalf("hosts/users: %+v", doc.Hosts)
	}
	u := doc.Hosts[0].Users[0]
	if len(u.Roster.Items) != 2 || u.Roster.Items[0].JID != "bob@example.org" || u.Roster.Items[0].Name != "Bob & Co" ||
		u.Roster.Items[0].Sub != "both" || strings.Join(u.Roster.Items[0].Groups, ",") != "Friends,Work" ||
		u.Roster.Items[1].Ask != "subscribe" {
		t.Errorf("roster: %+v", u.Roster)
	}
	if u.VCard.FN != "Alice" {
		t.Errorf("vCard FN %q", u.VCard.FN)
	}
	if len(u.Offline.Messages) != 1 || u.Offline.Messages[0].Body != "offline" {
		t.Errorf("offline: %+v", u.Offline)
	}
	res := u.Archive.Results
	if len(res) != len(want) {
		t.Fatalf("%d results, want %d", len(res), len(want))
	}
	for i, w := range want {
		g := res[i]
		if g.ID != w.id {
			t.Fatalf("result %d: id %s, want %s (order or duplicate)", i, g.ID, w.id)
		}
		if g.Forwarded.Delay.Stamp != w.ts.Format(time.RFC3339Nano) {
			t.Fatalf("result %d: stamp %s, want %s", i, g.Forwarded.Delay.Stamp, w.ts.Format(time.RFC3339Nano))
		}
		m := g.Forwarded.Message
		if m.XMLName.Space != "jabber:client" || m.From != w.from {
			t.Fatalf("result %d: message %+v", i, m)
		}
		_, body, _ := strings.Cut(w.raw, "<body>")
		body, _, _ = strings.Cut(body, "</body>")
		if m.Body != xmlUnescape(body) {
			t.Fatalf("result %d: body %q, want %q", i, m.Body, xmlUnescape(body))
		}
	}
	if strings.Contains(r.out, "bob's") {
		t.Error("another user's message was exported")
	}
}

func xmlUnescape(s string) string {
	return strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">").Replace(s)
}

func TestArchiveExportErrors(t *testing.T) {
	cfgPath, dataDir := testCLIConfig(t, "")
	fillArchive(t, dataDir)
	c := "--config=" + cfgPath
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown user", []string{"--user", "zed@example.org"}, "no such user zed@example.org"},
		{"wrong domain", []string{"--user", "alice@other.example"}, "domain other.example is not served here"},
		{"no localpart", []string{"--user", "example.org"}, `"example.org" is not a user JID`},
		{"resource", []string{"--user", "alice@example.org/phone"}, "expected a bare JID"},
		{"invalid jid", []string{"--user", "a@b@c"}, `"a@b@c" is not a valid JID`},
		{"no user", nil, "--user is required"},
		{"bad format", []string{"--user", "alice@example.org", "--format", "csv"}, `--format must be jsonl or xep0227, not "csv"`},
		{"extra args", []string{"--user", "alice@example.org", "x"}, `unexpected argument "x"`},
		{"bad output dir", []string{"--user", "alice@example.org", "-o", filepath.Join(t.TempDir(), "no", "such", "f")}, "exporting archive of alice@example.org"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, "", append(append([]string{"archive", "export"}, tc.args...), c)...)
			r.fails(t, tc.want)
			if r.out != "" {
				t.Errorf("stdout %q", r.out)
			}
		})
	}
	runCLI(t, "", "archive", "frobnicate", c).fails(t, `unknown command "frobnicate"`)
}
