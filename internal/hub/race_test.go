//go:build race

package hub_test

// raceEnabled: the race detector multiplies memory, so heap measurements are off.
const raceEnabled = true
