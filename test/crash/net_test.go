package crash

import (
	"net"
	"time"
)

// netListen reserves a loopback port for a server started right after.
type netListen struct{}

func (netListen) listen() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

func dial(addr string) (net.Conn, error) { return net.DialTimeout("tcp", addr, time.Second) }
