package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// openPTY returns a pseudo-terminal pair, or skips the test.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Skipf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
	if err != nil {
		t.Skipf("ptsname: %v", err)
	}
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("open pty slave: %v", err)
	}
	t.Cleanup(func() { slave.Close() })
	return master, slave
}

func TestPasswordFromTerminal(t *testing.T) {
	cfgPath, _ := testCLIConfig(t, "")
	for _, tc := range []struct {
		name, input string
		wantCode    int
		wantErr     string
	}{
		{"matching", "tty-secret\ntty-secret\n", 0, ""},
		{"mismatch", "one\ntwo\n", 1, "passwords do not match"},
		{"empty", "\n", 1, "empty password refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			master, slave := openPTY(t)
			if !isTerminal(int(slave.Fd())) {
				t.Fatal("isTerminal(pty) = false")
			}
			before, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
			if err != nil {
				t.Fatal(err)
			}
			// Canonical mode keeps the lines apart; both are queued now.
			if _, err := master.WriteString(tc.input); err != nil {
				t.Fatal(err)
			}
			var out, errOut bytes.Buffer
			jid := "tty-" + tc.name + "@localhost"
			code := execute(context.Background(), []string{"user", "add", jid, "--config", cfgPath}, slave, &out, &errOut)
			if code != tc.wantCode || !strings.Contains(errOut.String(), tc.wantErr) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, errOut.String(), tc.wantCode, tc.wantErr)
			}
			if !strings.Contains(errOut.String(), "Password for "+jid+": ") {
				t.Errorf("no prompt on stderr: %q", errOut.String())
			}
			if tc.wantCode == 0 {
				if !strings.Contains(errOut.String(), "Repeat password: ") {
					t.Errorf("no second prompt: %q", errOut.String())
				}
				checkPassword(t, cfgPath, jid, "tty-secret", true)
			}
			after, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
			if err != nil {
				t.Fatal(err)
			}
			if after.Lflag != before.Lflag {
				t.Errorf("terminal flags not restored: %#x, was %#x", after.Lflag, before.Lflag)
			}
		})
	}
}
