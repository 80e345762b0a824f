package testserver

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// leakGrace is how long goroutines may take to end after the last server
// shut down (a stream lingering for its peer to read its end, a timer
// closing a socket).
const leakGrace = 10 * time.Second

// RunCheckingLeaks runs the package's tests (from TestMain) and then fails
// the run when goroutines of Parley's own code are still running although
// every test server has shut down: a connection or session whose
// goroutines are not tracked, or that Shutdown does not end.
func RunCheckingLeaks(m *testing.M) int {
	code := m.Run()
	if code != 0 {
		return code
	}
	var left []string
	for deadline := time.Now().Add(leakGrace); ; {
		left = parleyGoroutines()
		if len(left) == 0 {
			return 0
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Fprintf(os.Stderr, "FAIL: %d goroutines of Parley still running %v after the tests:\n\n%s\n",
		len(left), leakGrace, strings.Join(left, "\n\n"))
	return 1
}

// parleyGoroutines returns the stacks of the goroutines running Parley
// code, except this check's own and test helpers'.
func parleyGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if !strings.Contains(g, "github.com/parley-xmpp/parley/") || strings.Contains(g, "testserver.RunCheckingLeaks") {
			continue
		}
		// Frames of test code only (a test's own helper goroutine that
		// the test did not wait for) are the test's business.
		if !ownCode(g) {
			continue
		}
		out = append(out, g)
	}
	return out
}

// ownCode reports whether a stack has a frame in a non-test package.
func ownCode(stack string) bool {
	for _, line := range strings.Split(stack, "\n") {
		i := strings.Index(line, "github.com/parley-xmpp/parley/")
		if i < 0 {
			continue
		}
		pkg := line[i+len("github.com/parley-xmpp/parley/"):]
		if !strings.HasPrefix(pkg, "test/") && !strings.HasPrefix(pkg, "internal/testserver") {
			return true
		}
	}
	return false
}
