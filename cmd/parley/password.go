package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// readLine returns one line without its line ending. A last line without
// a newline counts; nothing at all is io.EOF.
func readLine(r *bufio.Reader) (string, error) {
	s, err := r.ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && s != "") {
		return "", err
	}
	return strings.TrimRight(s, "\r\n"), nil
}

// readPassword returns the password for account: the --password flag when
// given; else, when stdin is a terminal, asks twice without echo and
// compares; else reads one line from stdin. An empty password is refused.
func readPassword(cmd *cobra.Command, account string) (string, error) {
	if f := cmd.Flags().Lookup("password"); f != nil && f.Changed {
		if f.Value.String() == "" {
			return "", errors.New("empty password refused")
		}
		return f.Value.String(), nil
	}
	in := cmd.InOrStdin()
	if f, ok := in.(*os.File); ok && isTerminal(int(f.Fd())) {
		prompt := cmd.ErrOrStderr()
		fmt.Fprintf(prompt, "Password for %s: ", account)
		p1, err := readLineNoEcho(int(f.Fd()), f)
		fmt.Fprintln(prompt)
		if err != nil {
			return "", fmt.Errorf("reading password: %w", err)
		}
		if p1 == "" {
			return "", errors.New("empty password refused")
		}
		fmt.Fprint(prompt, "Repeat password: ")
		p2, err := readLineNoEcho(int(f.Fd()), f)
		fmt.Fprintln(prompt)
		if err != nil {
			return "", fmt.Errorf("reading password: %w", err)
		}
		if p1 != p2 {
			return "", errors.New("passwords do not match")
		}
		return p1, nil
	}
	p, err := readLine(bufio.NewReader(in))
	if errors.Is(err, io.EOF) {
		return "", errors.New("no password given: use --password, or write it as one line on stdin")
	}
	if err != nil {
		return "", fmt.Errorf("reading password from stdin: %w", err)
	}
	if p == "" {
		return "", errors.New("empty password refused")
	}
	return p, nil
}
