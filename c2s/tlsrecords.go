package c2s

import "github.com/parley-xmpp/parley/netlimit"

// recordHeaderLen is the length of a TLS record header: type, version and
// a two-byte length.
const recordHeaderLen = 5

// tlsRecords is the connection under a tls.Conn. Its reads never go past
// the end of the TLS record they are in, so crypto/tls never reads ahead
// into its own buffer: when a Read of the tls.Conn returns less than was
// asked for, TLS holds no input at all, and an idle stream can wait for
// the next record on the raw connection (netlimit.Conn.Wait, on a short
// stack) instead of inside tls.Conn.Read. The price is a second read
// system call per record (header, then body).
type tlsRecords struct {
	*netlimit.Conn
	hdrN  int  // bytes of the current record's header read so far
	lenHi byte // the high byte of its length
	left  int  // bytes of the current record's body still to come
}

func (r *tlsRecords) Read(p []byte) (int, error) {
	want := r.left
	if want == 0 {
		want = recordHeaderLen - r.hdrN
	}
	if len(p) > want {
		p = p[:want]
	}
	n, err := r.Conn.Read(p)
	if r.left > 0 {
		r.left -= n
		return n, err
	}
	for _, b := range p[:n] {
		switch r.hdrN {
		case 3:
			r.lenHi = b
		case 4:
			r.left = int(r.lenHi)<<8 | int(b)
		}
		r.hdrN++
	}
	if r.hdrN == recordHeaderLen {
		r.hdrN = 0
	}
	return n, err
}
