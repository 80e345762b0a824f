// Package wire is the XMPP stream on bytes: it reads a stream header and
// splits the stream into top-level elements (Reader), enforcing the limits
// one peer may make the server hold (stanza bytes, nesting depth,
// attributes) and the restricted XML of RFC 6120 §11 (no DTDs, comments,
// processing instructions or entity declarations). Each element becomes a
// Stanza that keeps its original bytes, with the header attributes parsed
// and the element tree built only when asked (Stanza.Tree), so that an
// unchanged stanza is written out byte for byte ("decode once, forward
// bytes"); WithAttr and WithChild splice changes into the bytes instead
// of re-serializing (docs/adr/0003-splice-children.md). The package also
// writes stream headers, stanza errors and stream errors. It imports no
// other package of Parley; xep builds on it.
package wire
