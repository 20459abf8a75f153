package api_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"callbridge/internal/api"
)

// TestOpenAPIMatchesRoutes keeps the OpenAPI description true: every documented
// operation is served (the mux does not answer 404 or 405 for it), and every route
// the server registers, on huma or straight on the mux, is documented.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	var e *env
	routes := api.CaptureRoutes(func() { e = newEnv(t) })()
	if len(routes) == 0 {
		t.Fatal("no routes recorded")
	}

	r := e.get("/api/v1/openapi.json", "")
	if r.status != http.StatusOK {
		t.Fatalf("openapi.json: status %d", r.status)
	}
	var spec struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	r.json(t, &spec)
	if !strings.HasPrefix(spec.OpenAPI, "3.1") {
		t.Errorf("openapi %q, want 3.1", spec.OpenAPI)
	}
	var documented []string
	for path, ops := range spec.Paths {
		for method := range ops {
			switch method {
			case "get", "put", "post", "delete", "patch", "head", "options":
				documented = append(documented, strings.ToUpper(method)+" "+path)
			}
		}
	}
	slices.Sort(documented)

	t.Run("every registered route is documented", func(t *testing.T) {
		var api []string
		for _, r := range routes {
			if _, path, _ := strings.Cut(r, " "); strings.HasPrefix(path, "/api/v1/") {
				api = append(api, r)
			}
		}
		if !slices.Contains(api, "GET /api/v1/ws") {
			t.Errorf("the WebSocket route is not among the recorded ones: %v", api)
		}
		if d := cmp.Diff(documented, api); d != "" {
			t.Errorf("documented (-) vs registered (+) routes:\n%s", d)
		}
	})

	t.Run("every documented route is served", func(t *testing.T) {
		for _, route := range documented {
			method, path, _ := strings.Cut(route, " ")
			t.Run(route, func(t *testing.T) {
				// Fill the path parameters with a dummy value.
				var b strings.Builder
				for {
					i := strings.IndexByte(path, '{')
					if i < 0 {
						b.WriteString(path)
						break
					}
					j := strings.IndexByte(path[i:], '}')
					b.WriteString(path[:i] + "dummy")
					path = path[i+j+1:]
				}
				var body *strings.Reader
				if method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch {
					body = strings.NewReader(`{}`)
				}
				var res response
				if body != nil {
					res = e.do(method, b.String(), e.keys["admin"], body)
				} else {
					res = e.do(method, b.String(), e.keys["admin"], nil)
				}
				switch res.status {
				case http.StatusMethodNotAllowed:
					t.Fatalf("%s %s: 405, the mux has no such route: %s", method, b.String(), res.body)
				case http.StatusNotFound:
					if ct := res.header.Get("Content-Type"); ct != "application/problem+json" {
						t.Fatalf("%s %s: 404 with Content-Type %q: not from a handler", method, b.String(), ct)
					}
					var p struct{ Detail string }
					res.json(t, &p)
					if p.Detail == "no such resource" {
						t.Fatalf("%s %s: 404 from the catch-all: the route is documented but not served", method, b.String())
					}
				}
			})
		}
	})

	t.Run("docs page", func(t *testing.T) {
		r := e.get("/api/v1/docs", "")
		if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
			t.Fatalf("docs: status %d, Content-Type %q", r.status, r.header.Get("Content-Type"))
		}
		if !strings.Contains(strings.ToLower(string(r.body)), "<html") || !strings.Contains(string(r.body), "openapi") {
			t.Fatalf("docs page does not look like the API reference: %.200s", r.body)
		}
	})
}
