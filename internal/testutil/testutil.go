// Package testutil holds helpers shared by tests across packages.
package testutil

import (
	"testing"
	"time"
)

// CheckFor polls fn until it returns nil, failing the test with fn's last error when
// timeout passes: tests wait for a condition, never for a fixed time.
func CheckFor(t testing.TB, timeout time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v: %v", timeout, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
