package config

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad: any bytes as a configuration file give a valid configuration or an
// error, never a panic.
func FuzzLoad(f *testing.F) {
	f.Add([]byte("listen: 127.0.0.1:8080\npbx:\n  - {id: sim, kind: sim, extensions: 8}\n"))
	f.Add([]byte("pbx: [{id: a, kind: sim, rate: 1e308, extensions: -1}]"))
	f.Add([]byte("&a [*a, *a]"))
	f.Add([]byte("pbx: !!binary AAAA"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Skip()
		}
		c, err := Load(path, func(string) string { return "" }, Overrides{})
		if err == nil {
			if verr := c.Validate(); verr != nil {
				t.Fatalf("Load accepted an invalid configuration: %v", verr)
			}
		}
	})
}
