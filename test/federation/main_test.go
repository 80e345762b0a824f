package federation

import (
	"os"
	"testing"

	"github.com/parley-xmpp/parley/internal/testserver"
)

// TestMain fails the run when a test leaves goroutines of the server
// running after its nodes shut down (issue 17: connection lifetimes).
func TestMain(m *testing.M) { os.Exit(testserver.RunCheckingLeaks(m)) }
