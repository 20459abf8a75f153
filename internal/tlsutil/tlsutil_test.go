package tlsutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestEnsureSelfSigned(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "cb.db.tls.crt"), filepath.Join(dir, "cb.db.tls.key")
	hosts := Hosts("gw.example.com:8443")
	first, err := EnsureSelfSigned(certPath, keyPath, hosts)
	if err != nil {
		t.Fatal(err)
	}
	leaf := first.Leaf
	if leaf == nil {
		t.Fatal("no leaf")
	}
	if _, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || leaf.PublicKey.(*ecdsa.PublicKey).Curve != elliptic.P256() {
		t.Errorf("key is %T, want ECDSA P-256", leaf.PublicKey)
	}
	if d := time.Until(leaf.NotAfter); d < Validity-2*time.Hour || d > Validity {
		t.Errorf("valid for %v more, want about 2 years", d)
	}
	if !slices.Equal(leaf.DNSNames, []string{"gw.example.com", "localhost"}) {
		t.Errorf("DNS SANs %v", leaf.DNSNames)
	}
	var ips []string
	for _, ip := range leaf.IPAddresses {
		ips = append(ips, ip.String())
	}
	if !slices.Equal(ips, []string{"127.0.0.1", "::1"}) {
		t.Errorf("IP SANs %v", ips)
	}
	for _, name := range []string{"gw.example.com", "localhost", "127.0.0.1", "::1"} {
		if err := leaf.VerifyHostname(name); err != nil {
			t.Errorf("not valid for %s: %v", name, err)
		}
	}
	for path, want := range map[string]os.FileMode{keyPath: 0o600, certPath: 0o644} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", filepath.Base(path), fi.Mode().Perm(), want)
		}
	}

	second, err := EnsureSelfSigned(certPath, keyPath, hosts)
	if err != nil {
		t.Fatal(err)
	}
	if second.Leaf.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		t.Errorf("second start generated a new certificate: serial %v, was %v", second.Leaf.SerialNumber, leaf.SerialNumber)
	}

	// The kept certificate verifies as its own root: what a client given the file does.
	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(certPath)
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("cert file is not PEM")
	}
	if _, err := second.Leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "localhost"}); err != nil {
		t.Errorf("verify against itself: %v", err)
	}
}

func TestEnsureSelfSignedRefusesHalfAPair(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "a.crt"), filepath.Join(dir, "a.key")
	os.WriteFile(certPath, []byte("someone's certificate"), 0o644)
	if _, err := EnsureSelfSigned(certPath, keyPath, Hosts("127.0.0.1:0")); err == nil || !strings.Contains(err.Error(), "only one of") {
		t.Fatalf("err %v", err)
	}
	if b, _ := os.ReadFile(certPath); string(b) != "someone's certificate" {
		t.Error("overwrote the existing file")
	}
}

func TestEnsureSelfSignedServes(t *testing.T) {
	dir := t.TempDir()
	certPath := filepath.Join(dir, "c.crt")
	cert, err := EnsureSelfSigned(certPath, filepath.Join(dir, "c.key"), Hosts("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(AcceptedPage(http.NotFoundHandler()))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	defer srv.Close()
	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(certPath)
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("status %d, type %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

func TestHosts(t *testing.T) {
	tests := []struct {
		listen string
		want   []string
	}{
		{"127.0.0.1:8443", []string{"127.0.0.1", "localhost", "::1"}},
		{"0.0.0.0:8443", []string{"localhost", "127.0.0.1", "::1"}},
		{":8443", []string{"localhost", "127.0.0.1", "::1"}},
		{"[::]:8443", []string{"localhost", "127.0.0.1", "::1"}},
		{"10.0.0.5:443", []string{"10.0.0.5", "localhost", "127.0.0.1", "::1"}},
		{"LOCALHOST:443", []string{"LOCALHOST", "127.0.0.1", "::1"}},
	}
	for _, tt := range tests {
		if got := Hosts(tt.listen); !slices.Equal(got, tt.want) {
			t.Errorf("Hosts(%q) = %v, want %v", tt.listen, got, tt.want)
		}
	}
}

func TestAcceptedPage(t *testing.T) {
	h := AcceptedPage(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
	}))
	tests := []struct {
		method, path string
		code         int
		page         bool
	}{
		{"GET", "/", 200, true},
		{"HEAD", "/", 200, false},
		{"POST", "/", http.StatusTeapot, false},
		{"GET", "/readyz", http.StatusTeapot, false},
		{"GET", "/index.html", http.StatusTeapot, false},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
		body := rec.Body.String()
		if rec.Code != tt.code || strings.Contains(body, "return to your CRM") != tt.page {
			t.Errorf("%s %s: %d %q", tt.method, tt.path, rec.Code, body)
		}
		if tt.page && (strings.Contains(body, "http://") || strings.Contains(body, "https://") || strings.Contains(body, "src=")) {
			t.Errorf("the page loads external resources: %s", body)
		}
	}
}

func TestRedirectAndRefuse(t *testing.T) {
	tests := []struct {
		port, host, target, want string
	}{
		{"8443", "gw.example.com:8080", "/api/v1/calls?limit=5", "https://gw.example.com:8443/api/v1/calls?limit=5"},
		{"443", "gw.example.com", "/", "https://gw.example.com/"},
		{"8443", "[::1]:8080", "/readyz", "https://[::1]:8443/readyz"},
		{"443", "[::1]", "/x", "https://[::1]/x"},
	}
	for _, tt := range tests {
		for _, method := range []string{"GET", "POST"} {
			req := httptest.NewRequest(method, tt.target, nil)
			req.Host = tt.host
			rec := httptest.NewRecorder()
			Redirect(tt.port).ServeHTTP(rec, req)
			if rec.Code != http.StatusPermanentRedirect || rec.Header().Get("Location") != tt.want {
				t.Errorf("%s %s%s: %d %q, want 308 %q", method, tt.host, tt.target, rec.Code, rec.Header().Get("Location"), tt.want)
			}
		}
	}
	rec := httptest.NewRecorder()
	Refuse().ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/calls", nil))
	if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "HTTPS") {
		t.Errorf("refuse: %d %q", rec.Code, rec.Body.String())
	}
}
