package main_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"callbridge/internal/testutil"
)

// These tests run the real binary, as a user would: built once, started with a
// database in a temporary folder, talked to over HTTP on 127.0.0.1.

var buildOnce struct {
	sync.Once
	path string
	err  error
}

func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "callbridge-e2e")
		if err != nil {
			buildOnce.err = err
			return
		}
		buildOnce.path = filepath.Join(dir, "callbridge")
		out, err := exec.Command("go", "build", "-o", buildOnce.path, ".").CombinedOutput()
		if err != nil {
			buildOnce.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildOnce.err != nil {
		t.Fatal(buildOnce.err)
	}
	return buildOnce.path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildOnce.path != "" {
		os.RemoveAll(filepath.Dir(buildOnce.path))
	}
	os.Exit(code)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type server struct {
	t    *testing.T
	cmd  *exec.Cmd
	addr string
	key  string
	logs *strings.Builder
	mu   sync.Mutex
	done chan struct{}
}

var keyLine = regexp.MustCompile(`admin key \(shown once, keep it\): (\S+)`)

// startServer runs `callbridge serve` with args and waits until /readyz answers.
func startServer(t *testing.T, dir, addr string, args ...string) *server {
	t.Helper()
	cmd := exec.Command(binary(t), append([]string{"serve", "--listen", addr, "--db", filepath.Join(dir, "callbridge.db")}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CALLBRIDGE_LOG_LEVEL=info")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, cmd: cmd, addr: addr, logs: &strings.Builder{}, done: make(chan struct{})}
	cmd.Stderr = writerFunc(func(p []byte) (int, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.logs.Write(p)
	})
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	keyCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := keyLine.FindStringSubmatch(sc.Text()); m != nil {
				keyCh <- m[1]
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	go func() {
		cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() { s.kill(syscall.SIGKILL) })
	checkFor(t, 20*time.Second, func() error {
		select {
		case <-s.done:
			return fmt.Errorf("server exited:\n%s", s.log())
		default:
		}
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("readyz %d", resp.StatusCode)
		}
		return nil
	})
	select {
	case s.key = <-keyCh:
	case <-time.After(2 * time.Second):
	}
	return s
}

func (s *server) log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logs.String()
}

func (s *server) kill(sig syscall.Signal) {
	if s.cmd.Process != nil {
		s.cmd.Process.Signal(sig)
	}
	<-s.done
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func (s *server) get(path, key string, out any) int {
	s.t.Helper()
	req, _ := http.NewRequest("GET", "http://"+s.addr+path, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode == 200 {
		if err := json.Unmarshal(body, out); err != nil {
			s.t.Fatalf("GET %s: %v\n%s", path, err, body)
		}
	}
	return resp.StatusCode
}

func checkFor(t *testing.T, timeout time.Duration, fn func() error) {
	t.Helper()
	testutil.CheckFor(t, timeout, fn)
}

type apiCall struct {
	ID          string `json:"id"`
	State       string `json:"state"`
	Disposition string `json:"disposition"`
	Cause       string `json:"cause"`
	Customer    string `json:"customer"`
}

type apiEvent struct {
	Seq  int64    `json:"seq"`
	ID   string   `json:"id"`
	Type string   `json:"type"`
	Call *apiCall `json:"call"`
}

// TestFirstRunShowsSimulatedCalls is the README's promise: a bare `callbridge serve`
// prints an admin key once, and within 15 s the API lists simulated calls with their
// dispositions.
func TestFirstRunShowsSimulatedCalls(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir, freeAddr(t))
	if !strings.HasPrefix(s.key, "cb_") {
		t.Fatalf("no admin key printed on first start; log:\n%s", s.log())
	}
	if strings.Contains(s.log(), s.key) {
		t.Fatal("the admin key appears in the log")
	}
	checkFor(t, 15*time.Second, func() error {
		var page struct{ Calls []apiCall }
		if code := s.get("/api/v1/calls", s.key, &page); code != 200 {
			return fmt.Errorf("GET /api/v1/calls: %d", code)
		}
		for _, c := range page.Calls {
			if c.Disposition != "" {
				return nil
			}
		}
		return fmt.Errorf("%d calls, none ended yet", len(page.Calls))
	})
	if code := s.get("/api/v1/calls", "wrong", nil); code != 401 {
		t.Errorf("wrong key: %d, want 401", code)
	}
	s.kill(syscall.SIGTERM)

	// Second start on the same database: no new admin key.
	s = startServer(t, dir, freeAddr(t))
	if s.key != "" {
		t.Error("a second admin key was printed")
	}
}

// TestKill9DuringLoad: every event a consumer received before kill -9 is still in the
// log with the same seq, and no call the simulator no longer has stays live.
func TestKill9DuringLoad(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "callbridge.yaml")
	if err := os.WriteFile(cfg, []byte("pbx:\n  - {id: sim, kind: sim, extensions: 500, rate: 100}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	s := startServer(t, dir, addr, "--config", cfg)
	key := s.key
	if key == "" {
		t.Fatal("no admin key")
	}

	received := map[int64]apiEvent{}
	live := map[string]bool{}
	var after int64
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		var page struct {
			Events []apiEvent
			Next   int64
		}
		if code := s.get(fmt.Sprintf("/api/v1/events?after=%d&wait=1&limit=1000", after), key, &page); code != 200 {
			t.Fatalf("events: %d", code)
		}
		for _, e := range page.Events {
			received[e.Seq] = e
			if e.Call != nil {
				live[e.Call.ID] = e.Call.State != "ended"
			}
		}
		after = page.Next
	}
	s.kill(syscall.SIGKILL)
	liveBefore := 0
	for _, l := range live {
		if l {
			liveBefore++
		}
	}
	t.Logf("received %d events up to seq %d before kill -9; %d calls live", len(received), after, liveBefore)
	if len(received) < 100 || liveBefore == 0 {
		t.Fatalf("load too light to prove anything: %d events, %d live calls", len(received), liveBefore)
	}

	s = startServer(t, dir, freeAddr(t), "--config", cfg, "--sim-rate", "0")
	var cursor int64
	found := 0
	for cursor < after {
		var page struct {
			Events []apiEvent
			Next   int64
		}
		if code := s.get(fmt.Sprintf("/api/v1/events?after=%d&limit=1000", cursor), key, &page); code != 200 {
			t.Fatalf("events after restart: %d", code)
		}
		if len(page.Events) == 0 {
			break
		}
		for _, e := range page.Events {
			if r, ok := received[e.Seq]; ok {
				found++
				if r.ID != e.ID || r.Type != e.Type {
					t.Fatalf("seq %d was %s %s, is now %s %s", e.Seq, r.Type, r.ID, e.Type, e.ID)
				}
			}
		}
		cursor = page.Next
	}
	if found != len(received) {
		t.Fatalf("%d of %d received events are in the log after the restart", found, len(received))
	}
	// A call live in the consumer's view either ended before the kill (its end was
	// committed after the last poll) or was ended as lost at the restart.
	lost := 0
	checkFor(t, 10*time.Second, func() error {
		lost = 0
		for id, wasLive := range live {
			if !wasLive {
				continue
			}
			var c apiCall
			if code := s.get("/api/v1/calls/"+id, key, &c); code != 200 {
				return fmt.Errorf("call %s: %d", id, code)
			}
			if c.State != "ended" {
				return fmt.Errorf("call %s still %s", id, c.State)
			}
			if c.Cause == "lost" {
				lost++
			}
		}
		return nil
	})
	if lost == 0 {
		t.Error("no call was ended as lost after the restart")
	}
	// And nothing at all is live: the restarted simulator generates no calls.
	var page struct{ Calls []apiCall }
	for _, state := range []string{"ringing", "active", "held"} {
		if code := s.get("/api/v1/calls?state="+state, key, &page); code != 200 {
			t.Fatalf("calls?state=%s: %d", state, code)
		}
		if len(page.Calls) != 0 {
			t.Errorf("%d calls still %s after restart", len(page.Calls), state)
		}
	}
}
