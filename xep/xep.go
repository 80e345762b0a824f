// Package xep holds namespace constants and pure predicates on stanzas,
// shared by routing and feature modules.
package xep

import (
	"time"

	"github.com/parley-xmpp/parley/wire"
)

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
	NSSASL2        = "urn:xmpp:sasl:2"                    // XEP-0388
	NSBind2        = "urn:xmpp:bind:0"                    // XEP-0386
	NSFAST         = "urn:xmpp:fast:0"                    // XEP-0484
	NSSASLUpgrade  = "urn:xmpp:sasl:upgrade:0"            // XEP-0480
	NSSCRAMUpgrade = "urn:xmpp:scram-upgrade:0"           // XEP-0480
	NSSM           = "urn:xmpp:sm:3"                      // XEP-0198
	NSCSI          = "urn:xmpp:csi:0"                     // XEP-0352
	NSPreApproval  = "urn:xmpp:features:pre-approval"     // RFC 6121 §3.4
	NSAltWebSocket = "urn:xmpp:alt-connections:websocket" // XEP-0156

	// Server to server.
	NSDialback        = "jabber:server:dialback"     // XEP-0220
	NSDialbackFeature = "urn:xmpp:features:dialback" // XEP-0220
	NSBidi            = "urn:xmpp:bidi"              // XEP-0288
	NSBidiFeature     = "urn:xmpp:features:bidi"     // XEP-0288

	// Messages and the archive.
	NSForward       = "urn:xmpp:forward:0"             // XEP-0297
	NSRSM           = "http://jabber.org/protocol/rsm" // XEP-0059
	NSMAM           = "urn:xmpp:mam:2"                 // XEP-0313
	NSMAMExtended   = "urn:xmpp:mam:2#extended"        // XEP-0313
	NSFulltext      = "urn:xmpp:fulltext:0"            // XEP-0431
	NSCarbons       = "urn:xmpp:carbons:2"             // XEP-0280
	NSCarbonsRules  = "urn:xmpp:carbons:rules:0"       // XEP-0280
	NSDirectInvite  = "jabber:x:conference"            // XEP-0249
	NSReference     = "urn:xmpp:reference:0"           // XEP-0372
	NSReactions     = "urn:xmpp:reactions:0"           // XEP-0444
	NSFasten        = "urn:xmpp:fasten:0"              // XEP-0422
	NSRetract       = "urn:xmpp:message-retract:1"     // XEP-0424
	NSRetract0      = "urn:xmpp:message-retract:0"     // XEP-0424, earlier version
	NSModerate      = "urn:xmpp:message-moderate:1"    // XEP-0425
	NSModerate0     = "urn:xmpp:message-moderate:0"    // XEP-0425, earlier version
	NSJingleMessage = "urn:xmpp:jingle-message:0"      // XEP-0353
	NSLegacyPGP     = "jabber:x:encrypted"             // XEP-0027
	NSReporting     = "urn:xmpp:reporting:1"           // XEP-0377

	// Publish-subscribe and PEP nodes.
	NSPubSub               = "http://jabber.org/protocol/pubsub"                 // XEP-0060
	NSPubSubEvent          = "http://jabber.org/protocol/pubsub#event"           // XEP-0060
	NSPubSubPublishOptions = "http://jabber.org/protocol/pubsub#publish-options" // XEP-0060
	NSAvatarData           = "urn:xmpp:avatar:data"                              // XEP-0084
	NSAvatarMetadata       = "urn:xmpp:avatar:metadata"                          // XEP-0084
	NSVCardUpdate          = "vcard-temp:x:update"                               // XEP-0153
	NSPEPVCardConversion   = "urn:xmpp:pep-vcard-conversion:0"                   // XEP-0398
	NSNick                 = "http://jabber.org/protocol/nick"                   // XEP-0172
	NSBookmarks            = "urn:xmpp:bookmarks:1"                              // XEP-0402
	NSPrivate              = "jabber:iq:private"                                 // XEP-0049
	NSPrivateBookmarks     = "storage:bookmarks"                                 // XEP-0048
	NSBookmarksConversion  = "urn:xmpp:bookmarks-conversion:0"                   // XEP-0411
	NSMDSDisplayed         = "urn:xmpp:mds:displayed:0"                          // XEP-0490
	NSMDSServerAssist      = "urn:xmpp:mds:server-assist:0"                      // XEP-0490
	NSOMEMO2Devices        = "urn:xmpp:omemo:2:devices"                          // XEP-0384
	NSOMEMO2Bundles        = "urn:xmpp:omemo:2:bundles"                          // XEP-0384
	// NSOMEMOLegacyDevices and the bundles prefix are the nodes of
	// OMEMO before 0.4 (eu.siacs.conversations.axolotl).
	NSOMEMOLegacyDevices       = "eu.siacs.conversations.axolotl.devicelist"
	NSOMEMOLegacyBundlesPrefix = "eu.siacs.conversations.axolotl.bundles:"

	// Services.
	NSPush         = "urn:xmpp:push:0"                           // XEP-0357
	NSPushSummary  = "urn:xmpp:push:summary"                     // XEP-0357
	NSHTTPUpload   = "urn:xmpp:http:upload:0"                    // XEP-0363
	NSDataValidate = "http://jabber.org/protocol/xdata-validate" // XEP-0122
	NSExtDisco     = "urn:xmpp:extdisco:2"                       // XEP-0215
	NSLastActivity = "jabber:iq:last"                            // XEP-0012
	NSBytestreams  = "http://jabber.org/protocol/bytestreams"    // XEP-0065
	NSPIE          = "urn:xmpp:pie:0"                            // XEP-0227
	NSPIEMAM       = "urn:xmpp:pie:0#mam"                        // XEP-0227

	// Multi-user chat (XEP-0045) and its extensions.
	NSMUC         = "http://jabber.org/protocol/muc"
	NSMUCUser     = "http://jabber.org/protocol/muc#user"
	NSMUCTraffic  = "http://jabber.org/protocol/muc#traffic"
	NSMUCStableID = "http://jabber.org/protocol/muc#stable_id" // XEP-0045 §7.2.1 (stanza-ids)
	NSOccupantID  = "urn:xmpp:occupant-id:0"                   // XEP-0421
)

// HasBody reports whether a message has a <body/>.
func HasBody(s *wire.Stanza) bool {
	return s.Name == "message" && s.HasChild(wire.NSClient, "body")
}

// IsEncrypted reports whether a message carries an OMEMO payload in either
// namespace.
func IsEncrypted(s *wire.Stanza) bool {
	return s.Name == "message" && (s.HasChild(NSOMEMOLegacy, "encrypted") || s.HasChild(NSOMEMO2, "encrypted"))
}

// Hint reports whether a message carries the XEP-0334 hint (e.g. "no-store").
func Hint(s *wire.Stanza, hint string) bool {
	return s.HasChild(NSHints, hint)
}

// IsChatStateOnly reports whether a message has a chat state and no
// content worth storing.
func IsChatStateOnly(s *wire.Stanza) bool {
	if s.Name != "message" || HasBody(s) || IsEncrypted(s) {
		return false
	}
	return s.HasChildIn(NSChatStates)
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
		s.HasChild(NSReceipts, "received") || s.HasChild(NSMarkers, "displayed") ||
		s.HasChild(wire.NSClient, "subject")
}

// DateTime formats t as an XEP-0082 DateTime in UTC with at most six
// fraction digits (microseconds, the precision the stores keep). Go's
// RFC3339Nano writes up to nine, which clients parsing with a microsecond
// field reject (slixmpp's XEP-0082 parser, Python's %f): MUC history and
// MAM results lost their timestamps there.
func DateTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.999999Z") }
