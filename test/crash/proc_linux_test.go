package crash

import (
	"os/exec"
	"syscall"
)

// dieWithTest makes the server die with the test process, so a test that
// is killed (timeout, ^C) leaves no server behind.
func dieWithTest(cmd *exec.Cmd) { cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} }
