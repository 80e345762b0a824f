package storage

import "context"

// PrivateXML stores XEP-0049 private XML: one element per owner and
// namespace, kept byte for byte. DeleteAccount removes it with the account
// (table private_xml in both backends).
type PrivateXML interface {
	// PrivateXML returns the element stored for the namespace, or
	// ErrNotFound.
	PrivateXML(ctx context.Context, owner, ns string) ([]byte, error)
	// SetPrivateXML stores (replaces) the element for the namespace.
	SetPrivateXML(ctx context.Context, owner, ns string, raw []byte) error
	// CountPrivateXML returns how many namespaces the owner stores.
	CountPrivateXML(ctx context.Context, owner string) (int, error)
}
