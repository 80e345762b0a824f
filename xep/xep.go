// Package xep holds namespace constants and pure predicates on stanzas,
// shared by routing and feature modules.
package xep

import "github.com/parley-xmpp/parley/wire"

// Namespaces.
const (
	NSRoster       = "jabber:iq:roster"
	NSRosterVer    = "urn:xmpp:features:rosterver"
	NSBlocking     = "urn:xmpp:blocking"
	NSBlockingErr  = "urn:xmpp:blocking:errors"
	NSVCard        = "vcard-temp"
	NSDiscoInfo    = "http://jabber.org/protocol/disco#info"
	NSDiscoItems   = "http://jabber.org/protocol/disco#items"
	NSPing         = "urn:xmpp:ping"
	NSVersion      = "jabber:iq:version"
	NSTime         = "urn:xmpp:time"
	NSDelay        = "urn:xmpp:delay"
	NSCaps         = "http://jabber.org/protocol/caps"
	NSRegister     = "jabber:iq:register"
	NSRegisterFeat = "http://jabber.org/features/iq-register"
	NSDataForms    = "jabber:x:data"
	NSServerInfo   = "http://jabber.org/network/serverinfo"
	NSChatStates   = "http://jabber.org/protocol/chatstates"
	NSHints        = "urn:xmpp:hints"
	NSSID          = "urn:xmpp:sid:0"
	NSOMEMOLegacy  = "eu.siacs.conversations.axolotl"
	NSOMEMO2       = "urn:xmpp:omemo:2"
	NSReceipts     = "urn:xmpp:receipts"
	NSMarkers      = "urn:xmpp:chat-markers:0"
	NSOffline      = "msgoffline"
	NSSASL         = "urn:ietf:params:xml:ns:xmpp-sasl"
	NSTLS          = "urn:ietf:params:xml:ns:xmpp-tls"
	NSBind         = "urn:ietf:params:xml:ns:xmpp-bind"
	NSSession      = "urn:ietf:params:xml:ns:xmpp-session"
	NSSASLCB       = "urn:xmpp:sasl-cb:0"
	NSSASL2        = "urn:xmpp:sasl:2" // XEP-0388
	NSBind2        = "urn:xmpp:bind:0" // XEP-0386
	NSFAST         = "urn:xmpp:fast:0" // XEP-0484
	NSCarbons      = "urn:xmpp:carbons:2"
)

// HasBody reports whether a message has a <body/>.
func HasBody(s *wire.Stanza) bool {
	return s.Name == "message" && s.Child(wire.NSClient, "body") != nil
}

// IsEncrypted reports whether a message carries an OMEMO payload in either
// namespace.
func IsEncrypted(s *wire.Stanza) bool {
	return s.Name == "message" && (s.Child(NSOMEMOLegacy, "encrypted") != nil || s.Child(NSOMEMO2, "encrypted") != nil)
}

// Hint reports whether a message carries the XEP-0334 hint (e.g. "no-store").
func Hint(s *wire.Stanza, hint string) bool {
	return s.Child(NSHints, hint) != nil
}

// IsChatStateOnly reports whether a message has a chat state and no
// content worth storing.
func IsChatStateOnly(s *wire.Stanza) bool {
	if s.Name != "message" || HasBody(s) || IsEncrypted(s) {
		return false
	}
	for _, c := range s.Tree().Elements() {
		if c.Name.Space == NSChatStates {
			return true
		}
	}
	return false
}

// OfflineWorthy reports whether a message to an unavailable user should be
// stored for later delivery (XEP-0160 and XEP-0334 hints).
func OfflineWorthy(s *wire.Stanza) bool {
	if s.Name != "message" || (s.Type != "" && s.Type != "normal" && s.Type != "chat") {
		return false
	}
	if Hint(s, "no-store") || Hint(s, "no-permanent-store") {
		return false
	}
	return HasBody(s) || IsEncrypted(s) || Hint(s, "store") ||
		s.Child(NSReceipts, "received") != nil || s.Child(NSMarkers, "displayed") != nil ||
		s.Child(wire.NSClient, "subject") != nil
}
