package api_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"callbridge/internal/api"
	"callbridge/internal/call"
	"callbridge/internal/store"
)

// recorded seeds an ended call of 101 whose recording is rec, and returns its id.
func (e *env) recorded(name, rec string) string {
	e.t.Helper()
	e.calls[name] = uuid.NewString()
	pbxID := "p-" + name
	e.pbx.update(call.Update{PBXCallID: pbxID, CallID: e.calls[name], Time: t0, Kind: call.KindRing, Direction: call.DirectionIn, Customer: "89066800404", Extensions: []string{"101"}})
	e.pbx.update(call.Update{PBXCallID: pbxID, Time: t0.Add(time.Second), Kind: call.KindAnswer, Extension: "101"})
	e.pbx.update(call.Update{PBXCallID: pbxID, Time: t0.Add(9 * time.Second), Kind: call.KindEnd})
	e.pbx.update(call.Update{PBXCallID: pbxID, Time: t0.Add(10 * time.Second), Kind: call.KindFinal, Recording: rec})
	checkFor(e.t, func() error {
		c, err := e.st.Call(context.Background(), store.DefaultTenant, e.calls[name])
		if err != nil {
			return err
		}
		if c.Recording != rec {
			return fmt.Errorf("recording %q", c.Recording)
		}
		return nil
	})
	return e.calls[name]
}

func TestRecordings(t *testing.T) {
	dir := t.TempDir()
	audio := bytes.Repeat([]byte("RIFF-audio-"), 100)
	if err := os.WriteFile(filepath.Join(dir, "c1.wav"), audio, 0o644); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(t.TempDir(), "secret.wav")
	os.WriteFile(outside, []byte("not yours"), 0o644)
	e := newEnv(t, func(c *api.Config) { c.Recordings = api.Recordings{Dir: dir} })
	local := e.recorded("local", filepath.Join(dir, "c1.wav"))
	remote := e.recorded("remote", "https://pbx.example/rec/c2.wav")
	escape := e.recorded("escape", filepath.Join(dir, "..", filepath.Base(filepath.Dir(outside)), "secret.wav"))
	none := e.recorded("none", "")

	t.Run("file", func(t *testing.T) {
		r := e.get("/api/v1/calls/"+local+"/recording", e.keys["crm"])
		if r.status != http.StatusOK || !bytes.Equal(r.body, audio) {
			t.Fatalf("status %d, %d bytes", r.status, len(r.body))
		}
	})
	t.Run("range", func(t *testing.T) {
		r := e.do(http.MethodGet, "/api/v1/calls/"+local+"/recording", e.keys["alice"], nil, "Range", "bytes=10-19")
		if r.status != http.StatusPartialContent || !bytes.Equal(r.body, audio[10:20]) || r.header.Get("Content-Range") != fmt.Sprintf("bytes 10-19/%d", len(audio)) {
			t.Fatalf("status %d, body %q, range %q", r.status, r.body, r.header.Get("Content-Range"))
		}
	})
	t.Run("link of the PBX", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/api/v1/calls/"+remote+"/recording", nil)
		req.Header.Set("Authorization", "Bearer "+e.keys["crm"])
		client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusFound || res.Header.Get("Location") != "https://pbx.example/rec/c2.wav" {
			t.Fatalf("status %d, location %q", res.StatusCode, res.Header.Get("Location"))
		}
	})
	t.Run("never outside the directory", func(t *testing.T) {
		problem(t, e.get("/api/v1/calls/"+escape+"/recording", e.keys["crm"]), http.StatusNotFound)
	})
	t.Run("no recording", func(t *testing.T) {
		problem(t, e.get("/api/v1/calls/"+none+"/recording", e.keys["crm"]), http.StatusNotFound)
		problem(t, e.post("/api/v1/calls/"+none+"/recording/link", e.keys["crm"], ""), http.StatusNotFound)
	})
	t.Run("scopes", func(t *testing.T) {
		problem(t, e.get("/api/v1/calls/"+local+"/recording", e.keys["bob"]), http.StatusNotFound)  // not bob's call
		problem(t, e.get("/api/v1/calls/"+local+"/recording", e.keys["acme"]), http.StatusNotFound) // another tenant
		problem(t, e.get("/api/v1/calls/"+local+"/recording", ""), http.StatusUnauthorized)
	})
	t.Run("signed link", func(t *testing.T) {
		r := e.post("/api/v1/calls/"+local+"/recording/link", e.keys["alice"], `{"ttl": 60}`)
		var link struct {
			URL       string    `json:"url"`
			ExpiresAt time.Time `json:"expires_at"`
		}
		if r.status != http.StatusOK {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		r.json(t, &link)
		if d := time.Until(link.ExpiresAt); d < 50*time.Second || d > 70*time.Second {
			t.Fatalf("expires in %v", d)
		}
		// No key: the signature is the permission.
		got := e.get(link.URL, "")
		if got.status != http.StatusOK || !bytes.Equal(got.body, audio) {
			t.Fatalf("signed link: status %d", got.status)
		}
		tampered := link.URL[:len(link.URL)-2] + "xx"
		problem(t, e.get(tampered, ""), http.StatusNotFound)
		problem(t, e.get("/api/v1/recordings/garbage", ""), http.StatusNotFound)
		problem(t, e.post("/api/v1/calls/"+local+"/recording/link", e.keys["bob"], ""), http.StatusNotFound)
	})
}
