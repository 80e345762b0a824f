package wire

// Stanza error conditions (RFC 6120 §8.3.3).
const (
	ErrBadRequest            = "bad-request"
	ErrConflict              = "conflict"
	ErrFeatureNotImplemented = "feature-not-implemented"
	ErrForbidden             = "forbidden"
	ErrGone                  = "gone"
	ErrInternalServerError   = "internal-server-error"
	ErrItemNotFound          = "item-not-found"
	ErrJIDMalformed          = "jid-malformed"
	ErrNotAcceptable         = "not-acceptable"
	ErrNotAllowed            = "not-allowed"
	ErrNotAuthorized         = "not-authorized"
	ErrPolicyViolation       = "policy-violation"
	ErrRecipientUnavailable  = "recipient-unavailable"
	ErrRedirect              = "redirect"
	ErrRegistrationRequired  = "registration-required"
	ErrRemoteServerNotFound  = "remote-server-not-found"
	ErrRemoteServerTimeout   = "remote-server-timeout"
	ErrResourceConstraint    = "resource-constraint"
	ErrServiceUnavailable    = "service-unavailable"
	ErrSubscriptionRequired  = "subscription-required"
	ErrUndefinedCondition    = "undefined-condition"
	ErrUnexpectedRequest     = "unexpected-request"
)

// errorType is the default error type per condition (RFC 6120 §8.3.3).
func errorType(cond string) string {
	switch cond {
	case ErrBadRequest, ErrJIDMalformed, ErrNotAcceptable, ErrPolicyViolation, ErrRedirect:
		return "modify"
	case ErrForbidden, ErrNotAuthorized, ErrSubscriptionRequired, ErrRegistrationRequired:
		return "auth"
	case ErrRecipientUnavailable, ErrRemoteServerTimeout, ErrResourceConstraint, ErrUnexpectedRequest:
		return "wait"
	default:
		return "cancel"
	}
}

// ErrorElement builds an <error/> child for cond with an optional text and
// optional application-specific condition element.
func ErrorElement(cond, text string, app *Element) *Element {
	e := NewElement(NSClient, "error", "type", errorType(cond))
	e.Add(NewElement(NSStanzas, cond))
	if text != "" {
		t := NewElement(NSStanzas, "text")
		t.Attr = append(t.Attr, xmlLang("en"))
		e.Add(t.AddText(text))
	}
	return e.Add(app)
}

// ErrorReply returns the error response to s (RFC 6120 §8.3): addresses
// swapped, same id, type='error'. It returns nil when s is itself an error
// (errors are never answered with errors) or an iq result.
func ErrorReply(s *Stanza, cond, text string) *Stanza {
	return ErrorReplyApp(s, cond, text, nil)
}

// ErrorReplyApp is ErrorReply with an application-specific condition.
func ErrorReplyApp(s *Stanza, cond, text string, app *Element) *Stanza {
	if s.Type == "error" || (s.Name == "iq" && s.Type == "result") {
		return nil
	}
	e := NewElement(NSClient, s.Name, "from", s.To, "to", s.From, "type", "error", "id", s.ID)
	e.Add(ErrorElement(cond, text, app))
	return FromElement(e)
}

// IQResult builds an empty result for the iq request s, from the addressee.
func IQResult(s *Stanza, payload *Element) *Stanza {
	e := NewElement(NSClient, "iq", "from", s.To, "to", s.From, "type", "result", "id", s.ID)
	return FromElement(e.Add(payload))
}
