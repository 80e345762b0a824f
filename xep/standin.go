package xep

import (
	"strings"
	"unicode/utf8"

	"github.com/parley-xmpp/parley/wire"
)

// maxStandInText bounds the stored bytes a stand-in carries.
const maxStandInText = 64 << 10

// StandIn is the message delivered in place of a stored stanza that no
// longer parses (an offline message, an archived one): instead of the
// message silently vanishing, the recipient learns that it existed and
// gets what was stored as text. from is the original sender when the
// store knows it, else the server.
func StandIn(raw []byte, from, to string) *wire.Element {
	text := strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' || (r >= 0x20 && r <= 0xD7FF) || (r >= 0xE000 && r <= 0xFFFD) || r >= 0x10000 {
			return r
		}
		return utf8.RuneError // not allowed in XML
	}, strings.ToValidUTF8(string(raw), string(utf8.RuneError)))
	if len(text) > maxStandInText {
		text = wire.TruncateText(text, maxStandInText) + "…"
	}
	return wire.NewElement(wire.NSClient, "message", "type", "chat", "from", from, "to", to).Add(
		wire.NewElement(wire.NSClient, "body").AddText(
			"[The server could not read this stored message; here it is as it was stored] " + text))
}
