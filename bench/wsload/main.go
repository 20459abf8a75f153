// Command wsload is the WebSocket fan-out benchmark of issue 4: a callbridge server
// with the simulator at 10,000 extensions and 200 calls/s, and N WebSocket clients in
// this (separate) process, each subscribed to its own extension.
//
// It builds and starts `callbridge serve` (or, with -addr and -key, uses a running
// server), raises RLIMIT_NOFILE (the child inherits it), creates one integration key
// with the CLI (N user keys, each mapped to an extension, would take N CLI runs and
// N mapping requests; the server's work per event and per connection is the same for
// an integration key subscribed to one extension), ramps up the connections, then
// measures for -duration:
//
//   - delivery latency per event: the client's wall time when it has the frame minus
//     the event's "time" (stamped by the simulator when the step happens, so this is
//     an upper bound of commit → client: it also holds the hub's apply and commit);
//   - events received, clients connected, errors;
//   - the server's VmHWM and VmRSS (/proc/<pid>/status) and its CPU time.
//
// Run from the module root:
//
//	go run ./bench/wsload -clients 10000 -rate 200 -duration 60s
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
)

type options struct {
	bin        string
	addr       string
	key        string
	clients    int
	extensions int
	rate       float64
	duration   time.Duration
	ramp       int
	settle     time.Duration
	logLevel   string
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "", "callbridge binary (default: go build ./cmd/callbridge into a temporary folder)")
	flag.StringVar(&o.addr, "addr", "", "use a running server at host:port instead of starting one (needs -key)")
	flag.StringVar(&o.key, "key", "", "integration or admin key of the server at -addr")
	flag.IntVar(&o.clients, "clients", 10000, "WebSocket clients, each subscribed to its own extension")
	flag.IntVar(&o.extensions, "extensions", 10000, "simulator extensions (1-10000; numbered from 101 up to 899, else from 10000)")
	flag.Float64Var(&o.rate, "rate", 200, "simulated calls per second")
	flag.DurationVar(&o.duration, "duration", 60*time.Second, "measurement window, after every client has connected")
	flag.IntVar(&o.ramp, "ramp", 500, "new connections per second while ramping up")
	flag.DurationVar(&o.settle, "settle", 5*time.Second, "wait after the ramp before measuring")
	flag.StringVar(&o.logLevel, "log-level", "warn", "the started server's log level")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "wsload:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if o.clients < 1 || o.clients > o.extensions {
		return fmt.Errorf("-clients must be 1..%d (one extension each)", o.extensions)
	}
	nofile, err := raiseNofile()
	if err != nil {
		return err
	}
	logf("RLIMIT_NOFILE %d (inherited by the server)", nofile)
	if need := uint64(o.clients + 200); nofile < need {
		return fmt.Errorf("open files limit %d is below the %d this run needs", nofile, need)
	}

	var srv *child
	if o.addr == "" {
		if srv, err = startServer(o); err != nil {
			return err
		}
		defer srv.stop()
		o.addr, o.key = srv.addr, srv.integrationKey
	} else if o.key == "" {
		return errors.New("-addr needs -key")
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pos := &position{}
	go pos.follow(ctx, o.addr, o.key)
	if err := pos.ready(10 * time.Second); err != nil {
		return err
	}

	st := newStats()
	first := 101
	if o.extensions > 899 {
		first = 10000
	}
	var wg sync.WaitGroup
	start := time.Now()
	tick := time.NewTicker(time.Second / time.Duration(max(o.ramp, 1)))
	for i := range o.clients {
		<-tick.C
		wg.Add(1)
		go func() {
			defer wg.Done()
			client(ctx, o.addr, o.key, strconv.Itoa(first+i), pos, st)
		}()
		if (i+1)%1000 == 0 {
			logf("ramp: %d dialled, %d connected, %d errors", i+1, st.connected.Load(), st.errCount())
		}
	}
	tick.Stop()
	// Wait for the last dials to finish before measuring.
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if int(st.connected.Load())+st.errCount() >= o.clients {
			break
		}
	}
	logf("ramp done in %v: %d connected, %d errors; settling %v", time.Since(start).Round(time.Millisecond), st.connected.Load(), st.errCount(), o.settle)
	time.Sleep(o.settle)

	var cpu0 time.Duration
	var seq0 int64
	if srv != nil {
		cpu0, _ = cpuTime(srv.pid())
	}
	seq0 = pos.seq.Load()
	st.begin(time.Now())
	var peakRSS int64
	deadline := time.Now().Add(o.duration)
	for time.Now().Before(deadline) {
		time.Sleep(min(10*time.Second, time.Until(deadline)))
		line := fmt.Sprintf("measuring: %d events received, %d connected, %d errors", st.received.Load(), st.connected.Load(), st.errCount())
		if srv != nil {
			if m, err := procStatus(srv.pid()); err == nil {
				peakRSS = max(peakRSS, m["VmRSS"])
				line += fmt.Sprintf(", server VmRSS %s", mib(m["VmRSS"]))
			}
		}
		logf("%s", line)
	}
	window := st.end(time.Now())
	seq1 := pos.seq.Load()

	lat, foreign := st.result()
	fmt.Printf("\n== wsload: %d clients, %d extensions, %.0f calls/s, %v window ==\n", o.clients, o.extensions, o.rate, window.Round(time.Millisecond))
	fmt.Printf("server log: %d events committed in the window (%.0f/s)\n", seq1-seq0, float64(seq1-seq0)/window.Seconds())
	fmt.Printf("clients connected at the end: %d of %d\n", st.connected.Load(), o.clients)
	fmt.Printf("events received in the window: %d (%.0f/s); not of the client's extension: %d\n", len(lat), float64(len(lat))/window.Seconds(), foreign)
	if len(lat) > 0 {
		slices.Sort(lat)
		q := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
		fmt.Printf("delivery latency (client receive − event time): p50 %v  p95 %v  p99 %v  max %v\n",
			q(0.50).Round(10*time.Microsecond), q(0.95).Round(10*time.Microsecond), q(0.99).Round(10*time.Microsecond), lat[len(lat)-1].Round(10*time.Microsecond))
	}
	if srv != nil {
		m, err := procStatus(srv.pid())
		if err == nil {
			peakRSS = max(peakRSS, m["VmRSS"])
			fmt.Printf("server memory: VmHWM %s  VmRSS now %s  (peak sampled %s)\n", mib(m["VmHWM"]), mib(m["VmRSS"]), mib(peakRSS))
		}
		if cpu1, err := cpuTime(srv.pid()); err == nil {
			fmt.Printf("server CPU: %.2f cores busy on average in the window\n", (cpu1-cpu0).Seconds()/window.Seconds())
		}
	}
	errs := st.errorSummary()
	fmt.Printf("errors: %d\n", st.errCount())
	for _, e := range errs {
		fmt.Printf("  %s\n", e)
	}
	cancel()
	wg.Wait()
	return nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func mib(kb int64) string { return fmt.Sprintf("%.0f MiB", float64(kb)/1024) }

// raiseNofile raises the soft open-files limit to the hard one. Setting it through
// syscall.Setrlimit also makes os/exec pass the raised limit on to children.
func raiseNofile() (uint64, error) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, err
	}
	r.Cur = r.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, fmt.Errorf("raise RLIMIT_NOFILE: %w", err)
	}
	return r.Cur, nil
}

// ---- the server process ----

type child struct {
	cmd            *exec.Cmd
	dir            string
	tmp            bool
	addr           string
	integrationKey string
	done           chan struct{}
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) stop() {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(15 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
	if c.tmp {
		os.RemoveAll(c.dir)
	}
}

var adminKeyLine = regexp.MustCompile(`admin key \(shown once, keep it\): (\S+)`)

func startServer(o options) (*child, error) {
	dir, err := os.MkdirTemp("", "wsload")
	if err != nil {
		return nil, err
	}
	c := &child{dir: dir, tmp: true, done: make(chan struct{})}
	fail := func(err error) (*child, error) {
		os.RemoveAll(dir)
		return nil, err
	}
	bin := o.bin
	if bin == "" {
		bin = filepath.Join(dir, "callbridge")
		logf("building callbridge")
		if out, err := exec.Command("go", "build", "-o", bin, "callbridge/cmd/callbridge").CombinedOutput(); err != nil {
			return fail(fmt.Errorf("go build: %v\n%s", err, out))
		}
	}
	cfg := filepath.Join(dir, "callbridge.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, "pbx:\n  - {id: sim, kind: sim, extensions: %d, rate: %g}\n", o.extensions, o.rate), 0o600); err != nil {
		return fail(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	c.addr = ln.Addr().String()
	ln.Close()
	db := filepath.Join(dir, "callbridge.db")

	c.cmd = exec.Command(bin, "serve", "--listen", c.addr, "--db", db, "--config", cfg)
	c.cmd.Dir = dir
	c.cmd.Env = append(os.Environ(), "CALLBRIDGE_LOG_LEVEL="+o.logLevel)
	logFile, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		return fail(err)
	}
	c.cmd.Stderr = logFile
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		return fail(err)
	}
	if err := c.cmd.Start(); err != nil {
		return fail(err)
	}
	go func() {
		c.cmd.Wait()
		logFile.Close()
		close(c.done)
	}()
	logf("server pid %d on %s (log %s)", c.pid(), c.addr, logFile.Name())
	keyCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := adminKeyLine.FindStringSubmatch(sc.Text()); m != nil {
				keyCh <- m[1]
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-c.done:
			b, _ := os.ReadFile(logFile.Name())
			return fail(fmt.Errorf("server exited:\n%s", b))
		default:
		}
		resp, err := http.Get("http://" + c.addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			c.stop()
			return nil, fmt.Errorf("server not ready after 30 s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	select {
	case <-keyCh:
	case <-time.After(5 * time.Second):
		c.stop()
		return nil, errors.New("the server printed no admin key")
	}
	// One integration key, with the CLI, on the database the server uses.
	out, err := exec.Command(bin, "keys", "add", "wsload", "--scope", "integration", "--db", db, "--config", cfg).Output()
	if err != nil {
		c.stop()
		return nil, fmt.Errorf("callbridge keys add: %w", err)
	}
	c.integrationKey = strings.TrimSpace(string(out))
	return c, nil
}

// procStatus returns the kB fields of /proc/<pid>/status.
func procStatus(pid int) (map[string]int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	m := map[string]int64{}
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 2 && f[1] == "kB" {
			n, _ := strconv.ParseInt(f[0], 10, 64)
			m[k] = n
		}
	}
	return m, nil
}

// cpuTime returns the user + system time of pid (/proc/<pid>/stat, clock ticks of 1/100 s).
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces; the fields after it are fixed.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+stime) * 10 * time.Millisecond, nil
}

// ---- the log's position ----

// position follows the newest seq of the log, so a client connects with ?after= a
// recent seq instead of taking a snapshot of every live call (the key sees them all)
// or replaying the whole log.
type position struct {
	seq atomic.Int64
	got atomic.Bool
}

func (p *position) follow(ctx context.Context, addr, key string) {
	for ctx.Err() == nil {
		// Without after the answer holds no events and next is the newest seq.
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/api/v1/events", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			var page struct{ Next int64 }
			if resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&page) == nil {
				p.seq.Store(page.Next)
				p.got.Store(true)
			}
			resp.Body.Close()
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (p *position) ready(d time.Duration) error {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if p.got.Load() {
			return nil
		}
	}
	return errors.New("cannot read the log's position from GET /api/v1/events")
}

// ---- clients ----

type stats struct {
	connected atomic.Int64
	received  atomic.Int64 // in the window

	mu       sync.Mutex
	from, to time.Time // the window; zero: not measuring
	lat      []time.Duration
	foreign  int
	errs     map[string]int
	nerr     int
}

func newStats() *stats { return &stats{errs: map[string]int{}} }

func (s *stats) begin(t time.Time) {
	s.mu.Lock()
	s.from = t
	s.mu.Unlock()
}

func (s *stats) end(t time.Time) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.to = t
	return s.to.Sub(s.from)
}

func (s *stats) result() ([]time.Duration, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lat, s.foreign
}

// event records one event received at now, stamped at at; mine: it concerns the
// client's extension.
func (s *stats) event(now, at time.Time, mine bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Only events that happened in the window and arrived in it.
	if s.from.IsZero() || at.Before(s.from) || !s.to.IsZero() {
		return
	}
	s.lat = append(s.lat, now.Sub(at))
	s.received.Add(1)
	if !mine {
		s.foreign++
	}
}

var digits = regexp.MustCompile(`\d+`)

func (s *stats) fail(what string, err error) {
	msg := what
	if err != nil {
		msg += ": " + err.Error()
	}
	// Group errors that differ only by address or seq.
	msg = digits.ReplaceAllString(msg, "N")
	s.mu.Lock()
	s.errs[msg]++
	s.nerr++
	s.mu.Unlock()
}

func (s *stats) errCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nerr
}

func (s *stats) errorSummary() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for m, n := range s.errs {
		out = append(out, fmt.Sprintf("%d× %s", n, m))
	}
	slices.Sort(out)
	return out
}

// clientFrame is what a client decodes of a frame.
type clientFrame struct {
	Seq        int64           `json:"seq"`
	Time       time.Time       `json:"time"`
	Extensions []string        `json:"extensions"`
	Subscribed json.RawMessage `json:"subscribed"`
	Error      json.RawMessage `json:"error"`
}

// client is one WebSocket connection subscribed to ext; it reads until ctx ends.
func client(ctx context.Context, addr, key, ext string, pos *position, st *stats) {
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	conn, _, err := websocket.Dial(dctx, fmt.Sprintf("ws://%s/api/v1/ws?after=%d", addr, pos.seq.Load()), &websocket.DialOptions{
		HTTPHeader:      map[string][]string{"Authorization": {"Bearer " + key}},
		CompressionMode: websocket.CompressionDisabled,
	})
	cancel()
	if err != nil {
		st.fail("dial", err)
		return
	}
	defer conn.CloseNow()
	conn.SetReadLimit(1 << 20)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = conn.Write(wctx, websocket.MessageText, []byte(`{"subscribe":{"objects":["`+ext+`"]}}`))
	cancel()
	if err != nil {
		st.fail("subscribe", err)
		return
	}
	st.connected.Add(1)
	defer st.connected.Add(-1)

	var buf bytes.Buffer
	subscribed := false
	for {
		_, r, err := conn.Reader(ctx)
		if err == nil {
			buf.Reset()
			_, err = buf.ReadFrom(r)
		}
		now := time.Now()
		if err != nil {
			if ctx.Err() == nil {
				st.fail("read", err)
			}
			return
		}
		var f clientFrame
		if err := json.Unmarshal(buf.Bytes(), &f); err != nil {
			st.fail("frame not JSON", err)
			continue
		}
		switch {
		case f.Error != nil:
			st.fail("error frame", errors.New(string(f.Error)))
		case f.Subscribed != nil:
			subscribed = true
		case f.Seq > 0:
			if !subscribed {
				st.fail("event before the subscription's acknowledgement", nil)
			}
			st.event(now, f.Time, slices.Contains(f.Extensions, ext))
		}
	}
}
