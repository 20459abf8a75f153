package api

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"callbridge/internal/call"
)

// Recordings: GET /api/v1/calls/{id}/recording answers with the recording of a call,
// and POST /api/v1/calls/{id}/recording/link with a signed, expiring URL to it that a
// CRM page can embed without a key (ELMA365's VoipGetCallLink).
//
// Where the recording is: a call's recording is what its PBX reported. An http(s) link
// is the PBX's own (a cloud PBX, a web server in front of Asterisk's spool): the
// answer is a redirect to it. A file path is served from this machine, with Range
// support, when it lies inside the configured recordings directory (Asterisk's
// MixMonitor writes paths on the PBX host: the directory must be shared with it);
// any other path, and links of other schemes, are not served.

// defaultLinkTTL and maxLinkTTL bound a signed link's life.
const (
	defaultLinkTTL = 15 * time.Minute
	maxLinkTTL     = 24 * time.Hour
	recordingsPath = prefix + "/recordings/{token}"
)

// Recordings configures where recordings are served from.
type Recordings struct {
	// Dir is the directory recording files may be served from ("" : none).
	Dir string
	// LinkSecret signs recording links; empty: a random secret per process, so links
	// end with the process (set one shared secret for several nodes).
	LinkSecret []byte
}

type recordingInput struct {
	ID    string `path:"id" maxLength:"64"`
	Range string `header:"Range"`
}

type linkInput struct {
	ID   string `path:"id" maxLength:"64"`
	Body *struct {
		TTL int `json:"ttl,omitempty" minimum:"0" maximum:"86400" doc:"Seconds the link stays valid (default 900)."`
	}
}

type linkOutput struct {
	Body struct {
		URL       string    `json:"url" doc:"Path of the recording, to put after the gateway's address; no key needed."`
		ExpiresAt time.Time `json:"expires_at"`
	}
}

type signedInput struct {
	Token string `path:"token" maxLength:"512"`
	Range string `header:"Range"`
}

func (s *server) registerRecordings(cfg Recordings) error {
	s.recDir = cfg.Dir
	s.linkKey = cfg.LinkSecret
	if len(s.linkKey) == 0 {
		s.linkKey = make([]byte, 32)
		if _, err := rand.Read(s.linkKey); err != nil {
			return fmt.Errorf("api: recording link secret: %w", err)
		}
	}
	o := op("getRecording", http.MethodGet, prefix+"/calls/{id}/recording", "The recording of a call", http.StatusOK,
		http.StatusFound, http.StatusNotFound)
	o.Description = "Streams the recording (Range requests supported) or redirects to the PBX's link."
	huma.Register(s.api, o, func(ctx context.Context, in *recordingInput) (*huma.StreamResponse, error) {
		p, err := principal(ctx)
		if err != nil {
			return nil, err
		}
		c, err := s.visibleCall(ctx, p, in.ID)
		if err != nil {
			return nil, err
		}
		return s.serveRecording(c)
	})
	lo := op("linkRecording", http.MethodPost, prefix+"/calls/{id}/recording/link", "A signed, expiring link to a call's recording",
		http.StatusOK, http.StatusNotFound)
	huma.Register(s.api, lo, func(ctx context.Context, in *linkInput) (*linkOutput, error) {
		p, err := principal(ctx)
		if err != nil {
			return nil, err
		}
		c, err := s.visibleCall(ctx, p, in.ID)
		if err != nil {
			return nil, err
		}
		if c.Recording == "" {
			return nil, huma.Error404NotFound("call " + in.ID + " has no recording")
		}
		ttl := defaultLinkTTL
		if in.Body != nil && in.Body.TTL > 0 {
			ttl = min(time.Duration(in.Body.TTL)*time.Second, maxLinkTTL)
		}
		exp := time.Now().Add(ttl).Truncate(time.Second)
		out := &linkOutput{}
		out.Body.URL = strings.Replace(recordingsPath, "{token}", s.signLink(p.Tenant, c.ID, exp), 1)
		out.Body.ExpiresAt = exp.UTC()
		return out, nil
	})
	// The signed link needs no key: the signature is the permission.
	so := huma.Operation{OperationID: "getSignedRecording", Method: http.MethodGet, Path: recordingsPath,
		Summary: "A recording by signed link (no key)", Errors: []int{http.StatusNotFound}, MaxBodyBytes: maxBody}
	huma.Register(s.api, so, func(ctx context.Context, in *signedInput) (*huma.StreamResponse, error) {
		tenant, id, ok := s.checkLink(in.Token, time.Now())
		if !ok {
			return nil, huma.Error404NotFound("no such recording, or the link has expired")
		}
		c, err := s.hub.Store().Call(ctx, tenant, id)
		if err != nil {
			return nil, huma.Error404NotFound("no such recording, or the link has expired")
		}
		return s.serveRecording(c)
	})
	return nil
}

// serveRecording answers with c's recording: a redirect for a link, the file (with
// Range) for a path inside the recordings directory, else not found.
func (s *server) serveRecording(c *call.Call) (*huma.StreamResponse, error) {
	rec := c.Recording
	switch {
	case rec == "":
		return nil, huma.Error404NotFound("call " + c.ID + " has no recording")
	case strings.HasPrefix(rec, "https://"), strings.HasPrefix(rec, "http://"):
		return &huma.StreamResponse{Body: func(ctx huma.Context) {
			ctx.SetHeader("Location", rec)
			ctx.SetHeader("Cache-Control", "no-store")
			ctx.SetStatus(http.StatusFound)
		}}, nil
	}
	path := strings.TrimPrefix(rec, "file://")
	full, ok := s.inRecordingsDir(path)
	if !ok {
		return nil, huma.Error404NotFound("the recording of call " + c.ID + " is not where this gateway can serve it from")
	}
	f, err := os.Open(full)
	if err != nil {
		return nil, huma.Error404NotFound("the recording of call " + c.ID + " is not available")
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		f.Close()
		return nil, huma.Error404NotFound("the recording of call " + c.ID + " is not available")
	}
	return &huma.StreamResponse{Body: func(ctx huma.Context) {
		defer f.Close()
		r, w := humago.Unwrap(ctx)
		w.Header().Set("Cache-Control", "private, max-age=300")
		// ServeContent answers Range and If-Range, and picks the type by extension.
		http.ServeContent(w, r, filepath.Base(full), st.ModTime(), f)
	}}, nil
}

// inRecordingsDir resolves path and reports whether it lies inside the recordings
// directory: a PBX-supplied path must never reach other files (../, links out).
func (s *server) inRecordingsDir(path string) (string, bool) {
	if s.recDir == "" || path == "" {
		return "", false
	}
	dir, err := filepath.EvalSymlinks(s.recDir)
	if err != nil {
		return "", false
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(dir, path)
	}
	full, err := filepath.EvalSymlinks(filepath.Clean(path))
	if err != nil {
		return "", false
	}
	rel, err := filepath.Rel(dir, full)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", false
	}
	return full, true
}

// signLink makes the token of a recording link: tenant, call id and expiry, with an
// HMAC-SHA256 over them.
func (s *server) signLink(tenant, id string, exp time.Time) string {
	payload := make([]byte, 8, 8+len(tenant)+1+len(id))
	binary.BigEndian.PutUint64(payload, uint64(exp.Unix()))
	payload = append(payload, tenant...)
	payload = append(payload, 0)
	payload = append(payload, id...)
	mac := hmac.New(sha256.New, s.linkKey)
	mac.Write([]byte("recording\x00"))
	mac.Write(payload)
	return base64.RawURLEncoding.EncodeToString(payload) + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// checkLink verifies a link token at now and returns its tenant and call id.
func (s *server) checkLink(token string, now time.Time) (tenant, id string, ok bool) {
	enc, sig, found := strings.Cut(token, ".")
	if !found {
		return "", "", false
	}
	payload, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil || len(payload) < 10 {
		return "", "", false
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return "", "", false
	}
	mac := hmac.New(sha256.New, s.linkKey)
	mac.Write([]byte("recording\x00"))
	mac.Write(payload)
	if !hmac.Equal(got, mac.Sum(nil)) || now.Unix() > int64(binary.BigEndian.Uint64(payload[:8])) {
		return "", "", false
	}
	tenant, id, found = strings.Cut(string(payload[8:]), "\x00")
	if !found || tenant == "" || id == "" {
		return "", "", false
	}
	return tenant, id, true
}
