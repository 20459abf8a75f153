package api

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/danielgtaylor/huma/v2"
	"github.com/prometheus/client_golang/prometheus"

	"callbridge/internal/auth"
)

// authMiddleware authenticates operations that declare the bearer scheme. It runs
// before huma reads parameters or the body, so an anonymous caller costs no body
// read and learns nothing about validation.
func (s *server) authMiddleware(ctx huma.Context, next func(huma.Context)) {
	if !requiresKey(ctx.Operation()) {
		next(ctx)
		return
	}
	key, reason := bearer(ctx.Header("Authorization"))
	if reason == "" {
		p, err := s.auth.Authenticate(ctx.Context(), key)
		switch {
		case err == nil:
			next(huma.WithContext(ctx, auth.WithPrincipal(ctx.Context(), p)))
			return
		case errors.Is(err, auth.ErrUnauthorized):
			reason = "unknown key"
		default:
			// The store could not say; the key may be fine, so this is not a 401.
			s.log.Error("api: authenticate", "remote", ctx.RemoteAddr(), "path", ctx.URL().Path, "err", err)
			_ = huma.WriteErr(s.api, ctx, http.StatusServiceUnavailable, "cannot check the key now; retry later")
			return
		}
	}
	// Never the key or the header: a log is read by more people than the key was given to.
	s.log.Warn("api: request rejected", "remote", ctx.RemoteAddr(), "path", ctx.URL().Path, "reason", reason)
	ctx.SetHeader("WWW-Authenticate", `Bearer realm="callbridge"`)
	_ = huma.WriteErr(s.api, ctx, http.StatusUnauthorized, "a valid API key is required: Authorization: Bearer <key>")
}

func requiresKey(op *huma.Operation) bool {
	for _, req := range op.Security {
		if _, ok := req[securityScheme]; ok {
			return true
		}
	}
	return false
}

// bearer extracts the key of an Authorization header, or says why there is none.
func bearer(h string) (key, reason string) {
	if h == "" {
		return "", "no Authorization header"
	}
	scheme, key, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", "not a Bearer authorization"
	}
	key = strings.TrimSpace(key)
	if key == "" {
		return "", "empty bearer key"
	}
	return key, ""
}

// newRequestCounter creates the HTTP request counter and registers it with reg; a
// registry that has it already (a second API on the same registry) shares it.
func newRequestCounter(reg prometheus.Registerer) (*prometheus.CounterVec, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "callbridge_http_requests_total",
		Help: "HTTP requests served, by route pattern and status code.",
	}, []string{"route", "code"})
	if reg == nil {
		return c, nil
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
				return existing, nil
			}
		}
		return nil, fmt.Errorf("api: register metrics: %w", err)
	}
	return c, nil
}

// countRequests counts every request by the mux pattern that served it: patterns,
// unlike paths, are a bounded set, so a scan of random URLs cannot blow up the
// metric's cardinality.
func countRequests(c *prometheus.CounterVec, mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		mux.ServeHTTP(sw, r)
		route := r.Pattern // set by the mux on this request
		if route == "" {
			route = "unmatched"
		}
		code := sw.code
		if code == 0 {
			code = http.StatusOK
		}
		c.WithLabelValues(route, strconv.Itoa(code)).Inc()
	})
}

// statusWriter records the status a handler wrote. Unwrap lets http.ResponseController
// (huma's read deadline, flushing) reach the connection underneath.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
