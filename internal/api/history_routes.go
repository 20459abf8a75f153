package api

import (
	"net/http"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/danielgtaylor/huma/v2"
)

// routeRecorder is the server's huma.API with a memory: every operation registered
// through it (huma.Register ends in Adapter().Handle, documented or Hidden) and every
// route put on the mux with muxRoute is listed, so a test can check the OpenAPI
// description against what the server really serves (TestOpenAPIMatchesRoutes).
type routeRecorder struct {
	huma.API

	mu     sync.Mutex
	routes []string // "METHOD /path"
}

// routeHook, when set (only by tests), is given every recorder recordRoutes makes.
var routeHook atomic.Pointer[func(*routeRecorder)]

// recordRoutes wraps api; New installs it before any operation is registered.
func recordRoutes(api huma.API) huma.API {
	r := &routeRecorder{API: api}
	if h := routeHook.Load(); h != nil {
		(*h)(r)
	}
	return r
}

// Adapter returns the wrapped API's adapter, recording each operation it handles.
func (r *routeRecorder) Adapter() huma.Adapter { return recordingAdapter{r.API.Adapter(), r} }

func (r *routeRecorder) add(method, path string) {
	r.mu.Lock()
	r.routes = append(r.routes, method+" "+path)
	r.mu.Unlock()
}

// Routes returns the routes registered so far, sorted.
func (r *routeRecorder) Routes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := slices.Clone(r.routes)
	slices.Sort(out)
	return out
}

type recordingAdapter struct {
	huma.Adapter
	r *routeRecorder
}

func (a recordingAdapter) Handle(op *huma.Operation, handler func(huma.Context)) {
	a.r.add(op.Method, op.Path)
	a.Adapter.Handle(op, handler)
}

// muxRoute serves h on the mux for method and path (what huma cannot serve, such as
// a WebSocket upgrade) and records the route like a huma operation.
func (s *server) muxRoute(mux *http.ServeMux, method, path string, h http.HandlerFunc) {
	if r, ok := s.api.(*routeRecorder); ok {
		r.add(method, path)
	}
	mux.HandleFunc(method+" "+path, h)
}
