package api

import "sync"

var captureMu sync.Mutex

// CaptureRoutes runs build (which calls New) and returns a function listing the
// routes the first server built meanwhile registered ("METHOD /path", sorted).
func CaptureRoutes(build func()) func() []string {
	captureMu.Lock()
	defer captureMu.Unlock()
	var mu sync.Mutex
	var got *routeRecorder
	hook := func(r *routeRecorder) {
		mu.Lock()
		defer mu.Unlock()
		if got == nil {
			got = r
		}
	}
	routeHook.Store(&hook)
	defer routeHook.Store(nil)
	build()
	mu.Lock()
	defer mu.Unlock()
	r := got
	return func() []string {
		if r == nil {
			return nil
		}
		return r.Routes()
	}
}
