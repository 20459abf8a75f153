package api

import (
	"net/http"
	"strconv"
	"strings"
)

// CORS is the API's cross-origin policy: which other origins' pages (CRM widgets,
// the panel) may call it from a browser.
type CORS struct {
	// Origins are allowed origins ("https://crm.example.com"); "*" allows any.
	// Empty: no cross-origin access.
	Origins []string
	// MaxAge is how long, in seconds, a browser may cache a preflight answer.
	MaxAge int
}

// Methods and headers a cross-origin request may use.
const (
	corsMethods = "GET, POST, PUT, DELETE"
	corsHeaders = "Authorization, Content-Type"
)

// withCORS answers preflight requests of allowed origins and marks the responses to
// their actual requests as readable by them. A request of any other origin passes
// untouched: without Access-Control-Allow-Origin the browser refuses it. The origin
// is always echoed, never "*", and credentials are never allowed: keys travel in
// the Authorization header, not in cookies.
func withCORS(c CORS, next http.Handler) http.Handler {
	if len(c.Origins) == 0 {
		return next
	}
	anyOrigin := false
	allowed := map[string]bool{}
	for _, o := range c.Origins {
		if o == "*" {
			anyOrigin = true
			continue
		}
		allowed[strings.ToLower(strings.TrimSuffix(o, "/"))] = true
	}
	maxAge := strconv.Itoa(c.MaxAge)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		// The answer depends on Origin, whatever it is: a cache must not hand one
		// origin's answer to another.
		h.Add("Vary", "Origin")
		if !anyOrigin && !allowed[strings.ToLower(origin)] {
			next.ServeHTTP(w, r)
			return
		}
		h.Set("Access-Control-Allow-Origin", origin)
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Methods", corsMethods)
			h.Set("Access-Control-Allow-Headers", corsHeaders)
			h.Set("Access-Control-Max-Age", maxAge)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}
