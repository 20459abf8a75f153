package api

// SetMaxScan makes the events scan bound small for a test; the returned function
// restores it.
func SetMaxScan(n int) func() {
	old := maxScan
	maxScan = n
	return func() { maxScan = old }
}
