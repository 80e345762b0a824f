//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package main

import (
	"bufio"
	"io"
	"os"
)

// isTerminal reports whether fd is a character device; on this platform the
// password is read with echo.
func isTerminal(fd int) bool {
	fi, err := os.Stdin.Stat()
	return err == nil && fd == int(os.Stdin.Fd()) && fi.Mode()&os.ModeCharDevice != 0
}

// readLineNoEcho cannot turn echo off here; it reads a line.
func readLineNoEcho(_ int, r io.Reader) (string, error) {
	return readLine(bufio.NewReader(r))
}
