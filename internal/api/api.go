// Package api is callbridge's native HTTP API: REST resources under /api/v1 with an
// OpenAPI 3.1 description, long polling for events, and the operational endpoints
// (/healthz, /readyz, /metrics).
//
// Handlers are thin: they check the key's scope, call the hub or the store with the
// key's tenant, and map errors to RFC 9457 problem responses. No query ever runs
// without the tenant of the key that made the request.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"
	"github.com/prometheus/client_golang/prometheus"

	"callbridge/internal/auth"
	"callbridge/internal/hub"
	"callbridge/internal/phone"
)

// Config wires the API.
type Config struct {
	Hub    *hub.Hub
	Auth   *auth.Authenticator
	Logger *slog.Logger
	// Gatherer is what /metrics exposes (nil: no /metrics route).
	Gatherer prometheus.Gatherer
	// Registerer receives the API's HTTP metrics (nil: not registered).
	Registerer prometheus.Registerer
	// Phone normalises the phone filter of call searches (nil: region RU).
	Phone   *phone.Normalizer
	Version string
	// Ready reports whether the node can serve (nil: the store answers a ping).
	Ready func(context.Context) error
	// MaxScan bounds the events one long-poll request looks at (default 4096).
	MaxScan int
	// Recordings says where recording files are served from and signs their links.
	Recordings Recordings
	// CORS lets pages of other origins call the API (zero: none may).
	CORS CORS
	// WSTokenSecret signs the WebSocket tokens browsers connect with; empty: a random
	// secret per process, so a token is valid only on the node that issued it.
	WSTokenSecret []byte
}

// Paths of the API's description and documentation, served without a key so a
// developer can read them before having one.
const (
	prefix      = "/api/v1"
	openAPIPath = prefix + "/openapi"
	docsPath    = prefix + "/docs"
	schemasPath = prefix + "/schemas"
)

// maxBody bounds request bodies: 1 MiB is far more than any command needs. Huma
// refuses a body that reaches its limit, so the limit is one byte past 1 MiB to
// accept a body of exactly 1 MiB.
const maxBody = 1<<20 + 1

// securityScheme names the bearer scheme in the OpenAPI description; an operation
// that lists it requires a key (see authMiddleware).
const securityScheme = "bearer"

type server struct {
	hub   *hub.Hub
	auth  *auth.Authenticator
	log   *slog.Logger
	phone *phone.Normalizer
	ready func(context.Context) error
	api   huma.API
	// recDir is the directory recordings are served from; linkKey signs links.
	recDir  string
	linkKey []byte
	// wsSecret is the configured WebSocket token secret (empty: per process).
	wsSecret []byte
	// maxScan bounds the events one request looks at: a key that may see few of the
	// tenant's events (or a tenant among busy others) gets an answer with a next
	// cursor past what was scanned instead of a request that reads the whole log.
	maxScan int
}

// New builds the API's handler.
func New(cfg Config) (http.Handler, error) {
	if cfg.Hub == nil {
		return nil, errors.New("api: no hub")
	}
	if cfg.Auth == nil {
		return nil, errors.New("api: no authenticator")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Phone == nil {
		p, err := phone.NewNormalizer("")
		if err != nil {
			return nil, fmt.Errorf("api: %w", err)
		}
		cfg.Phone = p
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	s := &server{hub: cfg.Hub, auth: cfg.Auth, log: cfg.Logger, phone: cfg.Phone, ready: cfg.Ready, maxScan: cfg.MaxScan,
		wsSecret: cfg.WSTokenSecret}
	if s.maxScan <= 0 {
		s.maxScan = 4096
	}
	if s.ready == nil {
		s.ready = cfg.Hub.Store().Ping
	}
	requests, err := newRequestCounter(cfg.Registerer)
	if err != nil {
		return nil, err
	}

	mux := http.NewServeMux()
	hc := huma.DefaultConfig("callbridge", cfg.Version)
	// No "$schema" member in every response and no Link headers: CRMs parse these
	// bodies, and a stray member is one more thing to trip over.
	hc.CreateHooks = nil
	hc.OpenAPIPath = openAPIPath
	hc.DocsPath = docsPath
	hc.SchemasPath = schemasPath
	hc.Info.Description = "callbridge's native API: call history, click-to-call and call events. " +
		"Every /api/v1 operation takes an integration key as `Authorization: Bearer <key>`; " +
		"errors are RFC 9457 problem documents."
	hc.Components.SecuritySchemes = map[string]*huma.SecurityScheme{
		securityScheme: {Type: "http", Scheme: "bearer", Description: "An integration key (cb_…), issued with `callbridge keys add`."},
	}
	s.api = humago.New(mux, hc)
	s.api = recordRoutes(s.api)
	s.api.UseMiddleware(s.authMiddleware)

	s.registerCalls()
	s.registerHistory()
	s.registerEvents()
	s.registerPBX()
	s.registerWS(mux)
	s.registerControl()
	s.registerAdmin()
	if err := s.registerRecordings(cfg.Recordings); err != nil {
		return nil, err
	}
	s.registerHealth(mux, cfg.Gatherer)
	mux.HandleFunc(prefix+"/", func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, http.StatusNotFound, "no such resource")
	})
	return withCORS(cfg.CORS, countRequests(requests, mux)), nil
}

// op fills what every authenticated operation shares.
func op(id, method, path, summary string, status int, errs ...int) huma.Operation {
	return huma.Operation{
		OperationID:   id,
		Method:        method,
		Path:          path,
		Summary:       summary,
		DefaultStatus: status,
		Security:      []map[string][]string{{securityScheme: {}}},
		Errors:        append([]int{http.StatusUnauthorized}, errs...),
		MaxBodyBytes:  maxBody,
	}
}
