package federation

import (
	"encoding/binary"
	"net"
	"strings"
	"testing"
)

// fakeDNS is a tiny authoritative DNS server over UDP for third-party peers
// (ejabberd resolves with Erlang's inet_res, which only speaks DNS): it
// answers A queries from a and SRV queries from srv, and NXDOMAIN
// otherwise. Names are lower case without the trailing dot.
type fakeDNS struct {
	a   map[string]net.IP
	srv map[string]srvRecord
}

type srvRecord struct {
	target string
	port   uint16
}

// serveDNS starts d on a UDP port of ip and returns its address.
func serveDNS(t *testing.T, ip string, d fakeDNS) *net.UDPAddr {
	t.Helper()
	pc, err := net.ListenPacket("udp", ip+":0")
	if err != nil {
		t.Skipf("cannot listen on udp %s: %v", ip, err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp := d.answer(buf[:n]); resp != nil {
				_, _ = pc.WriteTo(resp, from)
			}
		}
	}()
	return pc.LocalAddr().(*net.UDPAddr)
}

const (
	dnsTypeA   = 1
	dnsTypeSRV = 33
)

func (d fakeDNS) answer(q []byte) []byte {
	if len(q) < 12 || binary.BigEndian.Uint16(q[4:6]) != 1 {
		return nil
	}
	// The question: labels, then type and class.
	i := 12
	var labels []string
	for i < len(q) && q[i] != 0 {
		l := int(q[i])
		if l&0xC0 != 0 || i+1+l > len(q) {
			return nil
		}
		labels = append(labels, string(q[i+1:i+1+l]))
		i += 1 + l
	}
	i++
	if i+4 > len(q) {
		return nil
	}
	qtype := binary.BigEndian.Uint16(q[i : i+2])
	question := q[12 : i+4]
	name := strings.ToLower(strings.Join(labels, "."))

	var rdata [][]byte
	known := false
	if ip, ok := d.a[name]; ok {
		known = true
		if qtype == dnsTypeA {
			rdata = append(rdata, ip.To4())
		}
	}
	if s, ok := d.srv[name]; ok {
		known = true
		if qtype == dnsTypeSRV {
			r := binary.BigEndian.AppendUint16(nil, 0)   // priority
			r = binary.BigEndian.AppendUint16(r, 0)      // weight
			r = binary.BigEndian.AppendUint16(r, s.port) // port
			r = append(r, dnsName(s.target)...)
			rdata = append(rdata, r)
		}
	}
	flags := uint16(0x8400) // response, authoritative
	if q[2]&0x01 != 0 {
		flags |= 0x0100 // recursion desired, echoed
	}
	if !known {
		flags |= 3 // NXDOMAIN
	}
	out := append([]byte(nil), q[0:2]...)
	out = binary.BigEndian.AppendUint16(out, flags)
	out = binary.BigEndian.AppendUint16(out, 1)
	out = binary.BigEndian.AppendUint16(out, uint16(len(rdata)))
	out = append(out, 0, 0, 0, 0) // no authority, no additional
	out = append(out, question...)
	for _, r := range rdata {
		out = append(out, 0xC0, 12) // the name of the question
		out = binary.BigEndian.AppendUint16(out, qtype)
		out = binary.BigEndian.AppendUint16(out, 1) // IN
		out = binary.BigEndian.AppendUint32(out, 60)
		out = binary.BigEndian.AppendUint16(out, uint16(len(r)))
		out = append(out, r...)
	}
	return out
}

func dnsName(s string) []byte {
	var b []byte
	for _, l := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	return append(b, 0)
}
