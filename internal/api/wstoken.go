package api

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"callbridge/internal/auth"
	"callbridge/internal/store"
)

// wsTokenTTL is how long a WebSocket token may be used to connect.
const wsTokenTTL = 60 * time.Second

// wsTokenPurpose is signed into every token: a token opens a WebSocket and is
// accepted nowhere else (it is not an API key).
const wsTokenPurpose = "ws"

// errBadToken is any token that is malformed, forged, expired or for another use.
var errBadToken = errors.New("invalid or expired token")

// wsTokens issues and checks the short-lived tokens browsers pass as ?token= on the
// WebSocket upgrade (a browser cannot set an Authorization header there). A token is
// the key's principal and an expiry, signed with HMAC-SHA256. The key is derived from
// the configured secret, so every node sharing it accepts every node's tokens (a load
// balancer may send the upgrade anywhere) and tokens survive a restart; without one it
// is random per process. A token stays valid until it expires even if its key is
// removed meanwhile (at most 60 s).
type wsTokens struct {
	secret [32]byte
	now    func() time.Time
}

// newWSTokens signs with a key derived from secret, or a random one when it is empty.
func newWSTokens(secret []byte) *wsTokens {
	t := &wsTokens{now: time.Now}
	if len(secret) == 0 {
		_, _ = rand.Read(t.secret[:]) // never fails: crypto/rand aborts the process instead
		return t
	}
	// Its own key, so the same secret used elsewhere signs nothing a token could pass for.
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("callbridge websocket token v1"))
	copy(t.secret[:], m.Sum(nil))
	return t
}

// wsClaims is what a token carries; short names keep the URL short.
type wsClaims struct {
	Purpose  string      `json:"p"`
	Tenant   string      `json:"t"`
	ClientID string      `json:"c"`
	Scope    store.Scope `json:"s"`
	CRMUser  string      `json:"u,omitempty"`
	Expiry   int64       `json:"e"`
}

func (t *wsTokens) mac(payload []byte) []byte {
	m := hmac.New(sha256.New, t.secret[:])
	m.Write(payload)
	return m.Sum(nil)
}

// issue returns a token for p and when it expires.
func (t *wsTokens) issue(p auth.Principal) (string, time.Time, error) {
	exp := t.now().Add(wsTokenTTL).Truncate(time.Second)
	payload, err := json.Marshal(wsClaims{Purpose: wsTokenPurpose, Tenant: p.Tenant, ClientID: p.ClientID,
		Scope: p.Scope, CRMUser: p.CRMUser, Expiry: exp.Unix()})
	if err != nil {
		return "", time.Time{}, err
	}
	enc := base64.RawURLEncoding
	return enc.EncodeToString(payload) + "." + enc.EncodeToString(t.mac(payload)), exp, nil
}

// verify returns the principal a token stands for, or errBadToken.
func (t *wsTokens) verify(token string) (auth.Principal, error) {
	if len(token) > 1024 {
		return auth.Principal{}, errBadToken
	}
	enc := base64.RawURLEncoding
	p64, s64, ok := strings.Cut(token, ".")
	if !ok {
		return auth.Principal{}, errBadToken
	}
	payload, err1 := enc.DecodeString(p64)
	sig, err2 := enc.DecodeString(s64)
	if err1 != nil || err2 != nil || !hmac.Equal(sig, t.mac(payload)) {
		return auth.Principal{}, errBadToken
	}
	var c wsClaims
	if err := json.Unmarshal(payload, &c); err != nil || c.Purpose != wsTokenPurpose || c.Tenant == "" || !c.Scope.Valid() {
		return auth.Principal{}, errBadToken
	}
	if !t.now().Before(time.Unix(c.Expiry, 0)) {
		return auth.Principal{}, errBadToken
	}
	return auth.Principal{Tenant: c.Tenant, ClientID: c.ClientID, Scope: c.Scope, CRMUser: c.CRMUser}, nil
}

type wsToken struct {
	Token     string    `json:"token" doc:"Pass as ?token= on GET /api/v1/ws. Opens one WebSocket; it is not an API key."`
	ExpiresAt time.Time `json:"expires_at" doc:"The token cannot be used to connect after this time (60 s after issue)."`
}

type wsTokenOutput struct {
	CacheControl string `header:"Cache-Control"`
	Body         wsToken
}

func (w *wsServer) registerToken() {
	o := op("createWSToken", http.MethodPost, prefix+"/ws/token", "Get a WebSocket token", http.StatusOK)
	o.Description = "A short-lived (60 s) token for a browser, which cannot set an Authorization header on a WebSocket: " +
		"connect with GET /api/v1/ws?token=… . The connection acts as the key that asked for the token."
	huma.Register(w.s.api, o, w.createToken)
}

func (w *wsServer) createToken(ctx context.Context, _ *struct{}) (*wsTokenOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	tok, exp, err := w.tokens.issue(p)
	if err != nil {
		return nil, w.s.problem(ctx, "ws token", err)
	}
	return &wsTokenOutput{CacheControl: "no-store", Body: wsToken{Token: tok, ExpiresAt: exp}}, nil
}
