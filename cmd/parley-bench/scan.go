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

// peek returns what is buffered, reading more when nothing is.
func (s *scanner) peek() ([]byte, error) {
	if n := s.br.Buffered(); n > 0 {
		return s.br.Peek(n)
	}
	if _, err := s.br.Peek(1); err != nil {
		return nil, err
	}
	return s.br.Peek(s.br.Buffered())
}

// Where next is in an element.
const (
	scText = iota // between tags, up to the next '<'
	scLt          // after '<': the tag's first byte
	scTag         // in a tag, up to the '>' outside quotes
)

// next returns the next top-level element; the slice is valid until the
// following call. It scans what is buffered a chunk at a time (the
// receivers of a load test read every message the server delivers: a
// call per byte cost the tool more CPU than scanning needs).
func (s *scanner) next() ([]byte, error) {
	s.buf = s.buf[:0]
	// Skip whitespace (keepalives) between elements.
	for {
		chunk, err := s.peek()
		if err != nil {
			return nil, err
		}
		if i := bytes.IndexByte(chunk, '<'); i >= 0 {
			_, _ = s.br.Discard(i)
			break
		}
		_, _ = s.br.Discard(len(chunk))
	}
	state, depth := scText, 0
	var closing bool
	var quote, prev byte
	for {
		chunk, err := s.peek()
		if err != nil {
			return nil, err
		}
		i, done := 0, false
		for i < len(chunk) && !done {
			switch state {
			case scText:
				j := bytes.IndexByte(chunk[i:], '<')
				if j < 0 {
					i = len(chunk)
					continue
				}
				i += j + 1
				state = scLt
			case scLt:
				c := chunk[i]
				i++
				closing, quote, prev = c == '/', 0, c
				state = scTag
			case scTag:
				c := chunk[i]
				i++
				switch {
				case quote != 0:
					if c == quote {
						quote = 0
					}
				case c == '\'' || c == '"':
					quote = c
				case c == '>':
					switch {
					case closing:
						depth--
						if depth < 0 {
							_, _ = s.br.Discard(i)
							return nil, errStreamEnd
						}
					case prev != '/':
						depth++
					}
					state = scText
					done = depth == 0
					continue
				}
				prev = c
			}
		}
		if len(s.buf)+i > s.max {
			return nil, errors.New("element too large")
		}
		s.buf = append(s.buf, chunk[:i]...)
		_, _ = s.br.Discard(i)
		if done {
			return s.buf, nil
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
