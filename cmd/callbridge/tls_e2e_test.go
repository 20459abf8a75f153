package main_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"callbridge/internal/tlsutil"
)

// startTLSServer runs `callbridge serve --config cfgPath` (whose listen is addr and
// which serves HTTPS) and waits until https://addr/readyz answers with the
// certificate in certPath as the only trusted root. It returns the server and an
// HTTPS client trusting that certificate.
func startTLSServer(t *testing.T, dir, addr, cfgPath, certPath string) (*server, *http.Client) {
	t.Helper()
	cmd := exec.Command(binary(t), "serve", "--config", cfgPath)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CALLBRIDGE_LOG_LEVEL=info")
	cmd.Stdout = io.Discard
	s := &server{t: t, cmd: cmd, addr: addr, logs: &strings.Builder{}, done: make(chan struct{})}
	cmd.Stderr = writerFunc(func(p []byte) (int, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.logs.Write(p)
	})
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() { s.kill(syscall.SIGKILL) })
	var client *http.Client
	checkFor(t, 20*time.Second, func() error {
		select {
		case <-s.done:
			return fmt.Errorf("server exited:\n%s", s.log())
		default:
		}
		if client == nil {
			b, err := os.ReadFile(certPath)
			if err != nil {
				return err
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(b) {
				return fmt.Errorf("%s: no certificate yet", certPath)
			}
			client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
		}
		resp, err := client.Get("https://" + addr + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("readyz %d", resp.StatusCode)
		}
		return nil
	})
	t.Cleanup(client.CloseIdleConnections)
	return s, client
}

// certSerial reads the serial number of the PEM certificate at path.
func certSerial(t *testing.T, path string) *big.Int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s is not PEM", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c.SerialNumber
}

// noRedirects is a plain-HTTP client that shows redirects instead of following them.
var noRedirects = &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func TestServeSelfSignedTLS(t *testing.T) {
	dir := t.TempDir()
	addr, httpAddr := freeAddr(t), freeAddr(t)
	db := filepath.Join(dir, "callbridge.db")
	cfgPath := filepath.Join(dir, "callbridge.yaml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf("listen: %q\ndb: %q\ntls: {mode: self-signed, http: redirect, http_listen: %q}\n", addr, db, httpAddr)), 0o600)
	certPath, keyPath := db+".tls.crt", db+".tls.key"

	s, client := startTLSServer(t, dir, addr, cfgPath, certPath)
	if fi, err := os.Stat(keyPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v, want mode 0600", fi, err)
	}
	serial := certSerial(t, certPath)

	// The page a user lands on after accepting the certificate.
	resp, err := client.Get("https://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(string(body), "return to your CRM") {
		t.Fatalf("GET /: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Fatalf("TLS state %+v", resp.TLS)
	}

	// Plain HTTP is redirected to the same path on the TLS port.
	resp, err = noRedirects.Get("http://" + httpAddr + "/api/v1/calls?limit=5")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if want := "https://" + addr + "/api/v1/calls?limit=5"; resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
		t.Fatalf("plain HTTP: %d %q, want 308 %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}

	// A TLS 1.1 client is refused.
	if _, err := tls.Dial("tcp", addr, &tls.Config{MaxVersion: tls.VersionTLS11, InsecureSkipVerify: true}); err == nil { //nolint:gosec // the test of a refusal
		t.Error("a TLS 1.1 handshake succeeded")
	}

	// A second start keeps the certificate the user accepted.
	s.kill(syscall.SIGTERM)
	client.CloseIdleConnections()
	startTLSServer(t, dir, addr, cfgPath, certPath)
	if got := certSerial(t, certPath); got.Cmp(serial) != 0 {
		t.Fatalf("second start: serial %v, was %v", got, serial)
	}
}

func TestServeFileTLSRefusesHTTP(t *testing.T) {
	dir := t.TempDir()
	addr, httpAddr := freeAddr(t), freeAddr(t)
	certPath, keyPath := filepath.Join(dir, "gw.crt"), filepath.Join(dir, "gw.key")
	if _, err := tlsutil.EnsureSelfSigned(certPath, keyPath, []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "callbridge.yaml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf("listen: %q\ndb: %q\ntls: {mode: file, cert: %q, key: %q, http: refuse, http_listen: %q}\n",
		addr, filepath.Join(dir, "callbridge.db"), certPath, keyPath, httpAddr)), 0o600)

	_, client := startTLSServer(t, dir, addr, cfgPath, certPath)
	resp, err := noRedirects.Get("http://" + httpAddr + "/api/v1/calls")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "https") {
		t.Fatalf("plain HTTP: %d %s, want 403 saying to use https", resp.StatusCode, body)
	}
	// With a configured certificate, "/" is not the self-signed page.
	resp, err = client.Get("https://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET / with mode file: %d, want 404", resp.StatusCode)
	}
}
