// Package clitest runs a built binary the way a user does, for the tests of
// every cmd/: exit status and both outputs, with a deadline so a hung
// binary fails the test instead of the suite.
package clitest

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"testing"
	"time"
)

// Timeout bounds one Run.
const Timeout = 2 * time.Minute

// Run runs bin with args to completion and returns its exit status and
// output. A binary that cannot be started, or outlives Timeout, fails t.
func Run(t testing.TB, bin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("%s %q: no exit within %v", bin, args, Timeout)
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("run %s %q: %v", bin, args, err)
	}
	return code, out.String(), errb.String()
}
