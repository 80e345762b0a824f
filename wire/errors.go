package wire

import (
	"errors"
	"strings"
)

// Namespaces of the stream layer.
const (
	NSStream = "http://etherx.jabber.org/streams"
	NSClient = "jabber:client"
	NSServer = "jabber:server"
	// NSComponent is the content namespace of XEP-0114 component streams.
	NSComponent = "jabber:component:accept"
	NSStreams   = "urn:ietf:params:xml:ns:xmpp-streams"
	NSStanzas   = "urn:ietf:params:xml:ns:xmpp-stanzas"
	NSFraming   = "urn:ietf:params:xml:ns:xmpp-framing"
	NSXML       = "http://www.w3.org/XML/1998/namespace"
	nsXMLNSURI  = "http://www.w3.org/2000/xmlns/"
)

// StreamError is an RFC 6120 §4.9 stream error. Reading functions return
// one when the peer violated the protocol; the caller sends it and closes.
type StreamError struct {
	Condition string // e.g. "not-well-formed", "policy-violation"
	// Content is the condition element's own text: the address of
	// <see-other-host/> (RFC 6120 §4.9.3.19).
	Content string
	Text    string
	// App is an optional application-specific condition element.
	App *Element
}

func (e *StreamError) Error() string {
	if e.Text == "" {
		return "stream error: " + e.Condition
	}
	return "stream error: " + e.Condition + ": " + e.Text
}

// Bytes renders the error as a <stream:error/> element, using the
// conventional "stream" prefix (declared on every stream header we write).
func (e *StreamError) Bytes() []byte {
	var b strings.Builder
	b.WriteString("<stream:error><")
	b.WriteString(e.Condition)
	if e.Content != "" {
		b.WriteString(" xmlns='" + NSStreams + "'>" + EscapeText(e.Content) + "</" + e.Condition + ">")
	} else {
		b.WriteString(" xmlns='" + NSStreams + "'/>")
	}
	if e.Text != "" {
		b.WriteString("<text xmlns='" + NSStreams + "' xml:lang='en'>")
		b.WriteString(EscapeText(e.Text))
		b.WriteString("</text>")
	}
	if e.App != nil {
		b.Write(e.App.Bytes())
	}
	b.WriteString("</stream:error>")
	return []byte(b.String())
}

// Stream error conditions used across the server.
const (
	CondBadFormat              = "bad-format"
	CondConflict               = "conflict"
	CondConnectionTimeout      = "connection-timeout"
	CondHostUnknown            = "host-unknown"
	CondInvalidFrom            = "invalid-from"
	CondInvalidNamespace       = "invalid-namespace"
	CondInternalServerError    = "internal-server-error"
	CondNotAuthorized          = "not-authorized"
	CondNotWellFormed          = "not-well-formed"
	CondPolicyViolation        = "policy-violation"
	CondResourceConstraint     = "resource-constraint"
	CondRestrictedXML          = "restricted-xml"
	CondSystemShutdown         = "system-shutdown"
	CondUndefinedCondition     = "undefined-condition"
	CondUnsupportedEncoding    = "unsupported-encoding"
	CondUnsupportedStanzaType  = "unsupported-stanza-type"
	CondUnsupportedVersion     = "unsupported-version"
	CondUnsupportedFeature     = "unsupported-feature"
	CondInvalidXML             = "invalid-xml"
	CondImproperAddressing     = "improper-addressing"
	CondReset                  = "reset"
	CondSeeOtherHost           = "see-other-host"
	CondBadNamespacePrefix     = "bad-namespace-prefix"
	CondNotAuthorizedStanzaErr = "not-authorized"
)

// ErrStreamEnd is returned by Reader.Next when the peer closed its stream
// with </stream:stream> (or <close/> over WebSocket).
var ErrStreamEnd = errors.New("wire: stream closed by peer")

func streamErr(cond, text string) *StreamError { return &StreamError{Condition: cond, Text: text} }

// AsStreamError reports whether err is (or wraps) a *StreamError.
func AsStreamError(err error) (*StreamError, bool) {
	var se *StreamError
	ok := errors.As(err, &se)
	return se, ok
}

// StreamConditions are the RFC 6120 §4.9.3 stream error conditions, for
// metric labels: a condition a peer sent or a code path built is counted
// under ConditionLabel, never under a name of the peer's choosing.
var StreamConditions = []string{
	CondBadFormat, CondBadNamespacePrefix, CondConflict, CondConnectionTimeout, "host-gone", CondHostUnknown,
	CondImproperAddressing, CondInternalServerError, CondInvalidFrom, CondInvalidNamespace, CondInvalidXML,
	CondNotAuthorized, CondNotWellFormed, CondPolicyViolation, "remote-connection-failed", CondReset,
	CondResourceConstraint, CondRestrictedXML, CondSeeOtherHost, CondSystemShutdown, CondUndefinedCondition,
	CondUnsupportedEncoding, CondUnsupportedFeature, CondUnsupportedStanzaType, CondUnsupportedVersion,
}

// StreamConditionLabel returns cond when it is one of StreamConditions,
// else "other".
func StreamConditionLabel(cond string) string { return oneOf(cond, StreamConditions) }

// StanzaConditions are the RFC 6120 §8.3.3 stanza error conditions.
var StanzaConditions = []string{
	ErrBadRequest, ErrConflict, ErrFeatureNotImplemented, ErrForbidden, ErrGone, ErrInternalServerError,
	ErrItemNotFound, ErrJIDMalformed, ErrNotAcceptable, ErrNotAllowed, ErrNotAuthorized, ErrPolicyViolation,
	ErrRecipientUnavailable, "redirect", "registration-required", ErrRemoteServerNotFound, ErrRemoteServerTimeout,
	ErrResourceConstraint, ErrServiceUnavailable, ErrSubscriptionRequired, ErrUndefinedCondition, ErrUnexpectedRequest,
}

// StanzaConditionLabel returns cond when it is one of StanzaConditions,
// else "other".
func StanzaConditionLabel(cond string) string { return oneOf(cond, StanzaConditions) }

func oneOf(v string, set []string) string {
	for _, s := range set {
		if v == s {
			return v
		}
	}
	return "other"
}
