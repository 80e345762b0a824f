package main

import (
	"bufio"
	"bytes"
	"errors"
	"strconv"
)

// errStreamEnd is returned by scanner.next when the server closed the
// stream (</stream:stream>).
var errStreamEnd = errors.New("stream closed by the server")

// scanner splits what a server sends after negotiation into top-level
// elements without building trees: the receiving side of a load test must
// cost little CPU, or it measures itself. It trusts the server to send
// well-formed XML (no comments, processing instructions or CDATA, which
// RFC 6120 §11 rules out anyway) and only tracks tags, quotes and depth.
type scanner struct {
	br  *bufio.Reader
	buf []byte
	max int // longest element accepted
}

func newScanner(br *bufio.Reader) *scanner { return &scanner{br: br, max: 1 << 20} }

// read appends the next byte to buf and returns it.
func (s *scanner) read() (byte, error) {
	c, err := s.br.ReadByte()
	if err != nil {
		return 0, err
	}
	if len(s.buf) >= s.max {
		return 0, errors.New("element too large")
	}
	s.buf = append(s.buf, c)
	return c, nil
}

// next returns the next top-level element; the slice is valid until the
// following call.
func (s *scanner) next() ([]byte, error) {
	s.buf = s.buf[:0]
	// Skip whitespace (keepalives) between elements.
	for {
		c, err := s.br.ReadByte()
		if err != nil {
			return nil, err
		}
		if c == '<' {
			s.buf = append(s.buf, c)
			break
		}
	}
	depth := 0
	for {
		// s.buf ends with '<': read one tag.
		c, err := s.read()
		if err != nil {
			return nil, err
		}
		closing := c == '/'
		var quote byte
		prev := c
		for {
			if c, err = s.read(); err != nil {
				return nil, err
			}
			if quote != 0 {
				if c == quote {
					quote = 0
				}
			} else if c == '\'' || c == '"' {
				quote = c
			} else if c == '>' {
				break
			}
			prev = c
		}
		switch {
		case closing:
			depth--
			if depth < 0 {
				return nil, errStreamEnd
			}
		case prev != '/':
			depth++
		}
		if depth == 0 {
			return s.buf, nil
		}
		// Text up to the next tag.
		for c != '<' {
			if c, err = s.read(); err != nil {
				return nil, err
			}
		}
	}
}

// elemName returns the local name of an element's root ("message" for
// "<message to=…>").
func elemName(el []byte) string {
	if len(el) < 2 || el[0] != '<' {
		return ""
	}
	end := 1
	for end < len(el) && el[end] != ' ' && el[end] != '>' && el[end] != '/' && el[end] != '\t' && el[end] != '\n' && el[end] != '\r' {
		end++
	}
	name := el[1:end]
	if i := bytes.IndexByte(name, ':'); i >= 0 {
		name = name[i+1:]
	}
	return string(name)
}

// isStanza reports whether el is a message, presence or iq: what XEP-0198
// counts.
func isStanza(el []byte) bool {
	switch elemName(el) {
	case "message", "presence", "iq":
		return true
	}
	return false
}

// attrValue returns the value of a plain attribute on the root start tag.
func attrValue(el []byte, name string) string {
	end := bytes.IndexByte(el, '>')
	if end < 0 {
		return ""
	}
	tag := el[:end]
	for _, q := range []string{"'", "\""} {
		key := " " + name + "=" + q
		if i := bytes.Index(tag, []byte(key)); i >= 0 {
			rest := tag[i+len(key):]
			if j := bytes.IndexByte(rest, q[0]); j >= 0 {
				return string(rest[:j])
			}
		}
	}
	return ""
}

// marker is what the throughput scenario puts in a message body:
// "pb:<step>:<sender>:<seq>:<unix nanoseconds it was due>".
const markerPrefix = "pb:"

func appendMarker(b []byte, step, sender int, seq uint64, due int64) []byte {
	b = append(b, markerPrefix...)
	b = strconv.AppendInt(b, int64(step), 10)
	b = append(b, ':')
	b = strconv.AppendInt(b, int64(sender), 10)
	b = append(b, ':')
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, ':')
	return strconv.AppendInt(b, due, 10)
}

// parseMarker finds a marker in an element.
func parseMarker(el []byte) (step, sender int, seq uint64, due int64, ok bool) {
	i := bytes.Index(el, []byte(markerPrefix))
	if i < 0 {
		return 0, 0, 0, 0, false
	}
	rest := el[i+len(markerPrefix):]
	var fields [4]int64
	for f := 0; f < 4; f++ {
		n, j := int64(0), 0
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			n = n*10 + int64(rest[j]-'0')
			j++
		}
		if j == 0 {
			return 0, 0, 0, 0, false
		}
		fields[f] = n
		rest = rest[j:]
		if f < 3 {
			if len(rest) == 0 || rest[0] != ':' {
				return 0, 0, 0, 0, false
			}
			rest = rest[1:]
		}
	}
	return int(fields[0]), int(fields[1]), uint64(fields[2]), fields[3], true
}
