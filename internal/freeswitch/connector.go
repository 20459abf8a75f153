package freeswitch

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"callbridge/internal/call"
	"callbridge/internal/freeswitch/esl"
	"callbridge/internal/hub"
	"callbridge/internal/pbxconn"
)

// Config is one FreeSWITCH connection.
type Config struct {
	// ID is the PBX id of configuration.
	ID string
	// Address is the event socket's host:port (8021).
	Address string
	// TLS, when set, connects with TLS (a stunnel in front of the event socket).
	TLS   *tls.Config
	Login Login
	// Correlator holds the dialplan conventions, for direction.
	Correlator Options
	// ExtensionChannel reaches an extension; "{ext}" is replaced (default user/{ext}).
	ExtensionChannel string
	// OutboundContext is the XML dialplan context where click-to-call dials the
	// customer (default "default").
	OutboundContext string
	// TransferContext is where transfers dial their target (default OutboundContext).
	TransferContext string
	// ConferenceProfile is the mod_conference profile of rooms callbridge opens
	// (default "default").
	ConferenceProfile string
	// AgentName names an extension's mod_callcenter agent; "{ext}" is replaced
	// (default {ext}@default). Names the PBX reports in callcenter::info win.
	AgentName string
	// Members are the PBX's extensions when the directory cannot be listed.
	Members []string
	// Keepalive is the interval of the probe command on a quiet link (default 20 s).
	Keepalive time.Duration
	// Backoff bounds the wait between reconnection attempts (default 500 ms to
	// 30 s); the wait doubles per failure, with jitter.
	Backoff pbxconn.Backoff
	// Session tunes each connection.
	Session SessionOptions
	// Dial opens the TCP connection (default a net.Dialer with a 10 s timeout).
	Dial pbxconn.DialFunc
}

// Connector is callbridge's connection to one FreeSWITCH: it keeps an event socket
// session up, feeds the correlator and the hub, and carries control commands back as
// API commands.
type Connector struct {
	cfg Config
	log *slog.Logger

	// out takes updates to the hub in the order the correlator made them, with a
	// (re)connect's Connected before anything made while it reconciled.
	out pbxconn.Outbox
	// mu guards the correlator, the originate ids, the agent names and the clock:
	// the session's reader goroutine and the connector's goroutine both use them.
	mu         sync.Mutex
	corr       *Correlator
	buf        []call.Update
	originated pbxconn.Originations // click-to-calls not yet seen, by preset uuid
	agents     map[string]string    // extension → callcenter agent name the PBX reported
	// clock is the PBX's, from Event-Date-Timestamp: it times what carries no
	// timestamp (the snapshot's end, a refused originate).
	clock pbxconn.Clock

	// disconnects counts sessions that ended, for metrics.
	disconnects atomic.Uint64

	smu  sync.Mutex
	sess *Session
	sink hub.Sink
	// stopped is set when Run ends: no background job may start after it.
	stopped bool

	// jobs are the background commands (click-to-call) waiting for their result;
	// Run waits for them before it returns.
	jobs sync.WaitGroup
}

// NewConnector checks cfg and builds a connector; it does not connect until Run.
func NewConnector(cfg Config, log *slog.Logger) (*Connector, error) {
	if cfg.ID == "" {
		return nil, errors.New("freeswitch: connector needs an id")
	}
	if _, _, err := net.SplitHostPort(cfg.Address); err != nil {
		return nil, fmt.Errorf("freeswitch: %s: address %q: %w", cfg.ID, cfg.Address, err)
	}
	if cfg.ExtensionChannel == "" {
		cfg.ExtensionChannel = "user/{ext}"
	}
	if !strings.Contains(cfg.ExtensionChannel, "{ext}") {
		return nil, fmt.Errorf("freeswitch: %s: extension channel %q has no {ext}", cfg.ID, cfg.ExtensionChannel)
	}
	if cfg.AgentName == "" {
		cfg.AgentName = "{ext}@default"
	}
	if cfg.OutboundContext == "" {
		cfg.OutboundContext = "default"
	}
	if cfg.TransferContext == "" {
		cfg.TransferContext = cfg.OutboundContext
	}
	if cfg.ConferenceProfile == "" {
		cfg.ConferenceProfile = "default"
	}
	for name, v := range map[string]string{"outbound context": cfg.OutboundContext, "transfer context": cfg.TransferContext,
		"conference profile": cfg.ConferenceProfile, "extension channel": cfg.ExtensionChannel, "agent name": cfg.AgentName} {
		// These become words of API commands: a space would shift the arguments.
		if strings.ContainsAny(v, " \t\r\n'") {
			return nil, fmt.Errorf("freeswitch: %s: %s %q must not contain spaces or quotes", cfg.ID, name, v)
		}
	}
	if cfg.Keepalive <= 0 {
		cfg.Keepalive = 20 * time.Second
	}
	cfg.Backoff = cfg.Backoff.Normalized()
	cfg.Correlator.PBX = cfg.ID
	corr, err := NewCorrelator(cfg.Correlator)
	if err != nil {
		return nil, fmt.Errorf("freeswitch: %s: %w", cfg.ID, err)
	}
	if log == nil {
		log = slog.Default()
	}
	return &Connector{cfg: cfg, log: log.With("pbx", cfg.ID), corr: corr,
		agents: map[string]string{}}, nil
}

// ID is the PBX id.
func (c *Connector) ID() string { return c.cfg.ID }

// Kind names the PBX kind, as in configuration.
func (c *Connector) Kind() string { return "freeswitch" }

// Run keeps a session up until ctx ends, reconnecting with exponential backoff and
// jitter; every session starts with a snapshot that reconciles the hub.
func (c *Connector) Run(ctx context.Context, sink hub.Sink) error {
	c.smu.Lock()
	c.sink = sink
	c.smu.Unlock()
	defer func() {
		c.smu.Lock()
		c.stopped = true
		c.smu.Unlock()
		c.jobs.Wait()
	}()
	pbxconn.Loop{
		Name: "freeswitch", Backoff: c.cfg.Backoff, Log: c.log,
		Session: func(ctx context.Context) (bool, error) { return c.session(ctx, sink) },
		Down: func(reason error, at time.Time) {
			c.disconnects.Add(1)
			sink.Disconnected(c.cfg.ID, reason, at)
		},
	}.Run(ctx)
	return nil
}

func (c *Connector) dial(ctx context.Context) (net.Conn, error) {
	conn, err := pbxconn.Dial(ctx, c.cfg.Dial, c.cfg.Address, c.cfg.TLS)
	if err != nil {
		return nil, fmt.Errorf("freeswitch: %w", err)
	}
	return conn, nil
}

// session runs one connection: dial, authenticate, snapshot, then events until the
// session or ctx ends. connected says whether the hub was told the link is up.
func (c *Connector) session(ctx context.Context, sink hub.Sink) (connected bool, err error) {
	conn, err := c.dial(ctx)
	if err != nil {
		return false, err
	}
	// The snapshot begins before the subscription: events follow it at once, and
	// the correlator must know they arrive while it reconciles.
	c.mu.Lock()
	c.corr.BeginSnapshot()
	c.mu.Unlock()
	c.out.Hold()
	// Whatever the session kept and did not get to send goes out when it ends.
	defer c.out.Release(sink.Update, nil, nil)
	raw, _ := sink.(hub.RawSink)
	handler := func(e *esl.Event, arrival time.Time) {
		var at time.Time
		var st hub.Status
		var ok bool
		c.out.Produce(sink.Update, func() []call.Update {
			c.mu.Lock()
			defer c.mu.Unlock()
			if ts, ok := eventTime(e); ok {
				c.clock.Observe(ts, arrival)
			}
			at = c.clock.Now(arrival)
			c.buf = c.corr.Feed(c.buf[:0], e, at)
			st, ok = presence(c.cfg.ID, c.corr, c.agents, e, at)
			return c.originated.Apply(c.buf)
		})
		if ok {
			sink.Status(st)
		}
		if raw != nil && raw.RawWanted(c.cfg.ID) {
			raw.Raw(c.cfg.ID, rawEvent(c.cfg.ID, e, at))
		}
	}
	octx, cancel := context.WithTimeout(ctx, 15*time.Second)
	s, err := Open(octx, conn, c.cfg.Login, c.cfg.Session, handler)
	cancel()
	if err != nil {
		return false, err
	}
	defer s.Close()
	c.setSession(s)
	defer c.setSession(nil)
	c.log.Info("freeswitch connected", "address", c.cfg.Address)

	if err := c.snapshot(ctx, s, sink); err != nil {
		return false, err
	}
	c.members(ctx, s, sink)

	probe := time.NewTicker(c.cfg.Keepalive)
	defer probe.Stop()
	for {
		select {
		case <-ctx.Done():
			return true, ctx.Err()
		case <-s.Done():
			return true, s.Err()
		case <-probe.C:
			// The event socket has no ping: a cheap command proves the PBX answers.
			pctx, cancel := context.WithTimeout(ctx, c.cfg.Keepalive)
			_, err := s.API(pctx, "uptime s")
			cancel()
			if err != nil && !errors.Is(err, ErrCommandFailed) && ctx.Err() == nil {
				s.fail(fmt.Errorf("freeswitch: keepalive: %w", err))
			}
		}
	}
}

// snapshot asks FreeSWITCH which channels and calls exist now and reconciles: the
// correlator holds what it heard since BeginSnapshot, and EndSnapshot says which
// calls survive.
func (c *Connector) snapshot(ctx context.Context, s *Session, sink hub.Sink) error {
	for _, cmd := range []string{"show channels as json", "show calls as json"} {
		body, err := s.API(ctx, cmd)
		if err != nil {
			return fmt.Errorf("freeswitch: snapshot: %w", err)
		}
		c.mu.Lock()
		err = c.corr.Snapshot(body)
		c.mu.Unlock()
		if err != nil {
			return fmt.Errorf("freeswitch: snapshot: %s: %w", cmd, err)
		}
	}
	regs, regErr := s.API(ctx, "show registrations as json")
	// The hub hears Connected first, then what was made while the lists came, then
	// the reconciliation's updates. Calls heard of live meanwhile count as alive: one
	// that ended then ends by its own update, not as lost.
	var now time.Time
	var ups []call.Update
	c.out.Release(sink.Update, func(heard []string) {
		c.mu.Lock()
		now = c.clock.Now(time.Now())
		var alive []string
		alive, c.buf = c.corr.EndSnapshot(c.buf[:0], now)
		ups = c.originated.Apply(c.buf)
		c.mu.Unlock()
		sink.Connected(c.cfg.ID, append(alive, heard...), now)
	}, func() {
		for _, u := range ups {
			sink.Update(u)
		}
		sink.Synced(c.cfg.ID, now)
	})
	if regErr != nil {
		c.log.Info("cannot list registrations", "err", regErr)
		return nil
	}
	for _, ext := range parseRegistrations(regs) {
		if c.corr.Internal(ext) {
			sink.Status(hub.Status{PBX: c.cfg.ID, Type: call.EventExtStatus, Extension: ext, Status: "registered", Time: now})
		}
	}
	return nil
}

// members tells the hub the PBX's extensions: from configuration, else from the
// user directory (list_users), numbers outside the internal pattern left out.
func (c *Connector) members(ctx context.Context, s *Session, sink hub.Sink) {
	var exts []hub.Extension
	seen := map[string]bool{}
	add := func(n, name string) {
		if n != "" && !seen[n] && c.corr.Internal(n) {
			seen[n] = true
			exts = append(exts, hub.Extension{Number: n, Name: name})
		}
	}
	for _, m := range c.cfg.Members {
		add(m, "")
	}
	if len(c.cfg.Members) == 0 {
		body, err := s.API(ctx, "list_users")
		if err != nil {
			c.log.Info("cannot list directory users; members come from configuration only", "err", err)
		}
		for _, u := range parseUsers(body) {
			add(u.id, u.name)
		}
	}
	if len(exts) > 0 {
		sink.Extensions(c.cfg.ID, exts)
	}
}

func (c *Connector) setSession(s *Session) {
	c.smu.Lock()
	c.sess = s
	c.smu.Unlock()
}

func (c *Connector) session0() (*Session, hub.Sink, error) {
	c.smu.Lock()
	defer c.smu.Unlock()
	if c.sess == nil {
		return nil, nil, fmt.Errorf("freeswitch: %s: %w", c.cfg.ID, ErrNotConnected)
	}
	return c.sess, c.sink, nil
}

// ErrNotConnected: a command came while the event socket is down. It wraps
// hub.ErrNoConnector, so the API answers 503.
var ErrNotConnected = fmt.Errorf("freeswitch: not connected: %w", hub.ErrNoConnector)

// Test opens a separate session, authenticates without subscribing to anything,
// asks for the uptime and leaves: it proves the address, the password and that the
// switch answers, without touching the running link.
func (c *Connector) Test(ctx context.Context) error {
	conn, err := c.dial(ctx)
	if err != nil {
		return err
	}
	s, err := Open(ctx, conn, Login{Password: c.cfg.Login.Password, Events: "plain HEARTBEAT"}, c.cfg.Session, nil)
	if err != nil {
		return err
	}
	defer s.Close()
	_, err = s.API(ctx, "uptime s")
	return err
}

// eventTime is an event's Event-Date-Timestamp (microseconds since the epoch).
func eventTime(e *esl.Event) (time.Time, bool) {
	return parseMicros(e.GetBytes("Event-Date-Timestamp"))
}

// rawEvent encodes an event as a pbx.raw event: a JSON event's own object, a plain
// event's headers as an object, a repeated header as an array of its values in
// order, the event's body as "_body" (as FreeSWITCH's JSON format has it).
func rawEvent(pbx string, e *esl.Event, at time.Time) []byte {
	var data json.RawMessage
	if e.IsJSON() {
		data = json.RawMessage(e.JSON())
	} else {
		fields := make(map[string]any, len(e.Fields())+1)
		for _, f := range e.Fields() {
			k, v := string(f.Key), string(f.Value)
			switch prev := fields[k].(type) {
			case nil:
				fields[k] = v
			case string:
				fields[k] = []string{prev, v}
			case []string:
				fields[k] = append(prev, v)
			}
		}
		if b := e.Body(); len(b) > 0 {
			fields["_body"] = string(b)
		}
		data, _ = json.Marshal(fields)
	}
	b, err := json.Marshal(struct {
		Type call.EventType  `json:"type"`
		PBX  string          `json:"pbx"`
		Time time.Time       `json:"time"`
		Data json.RawMessage `json:"data"`
	}{call.EventRaw, pbx, at.UTC(), data})
	if err != nil {
		// Only an invalid JSON event gets here: pass its text as a string.
		b, _ = json.Marshal(struct {
			Type call.EventType `json:"type"`
			PBX  string         `json:"pbx"`
			Time time.Time      `json:"time"`
			Data string         `json:"data"`
		}{call.EventRaw, pbx, at.UTC(), string(e.JSON())})
	}
	return b
}

// user is one line of list_users.
type user struct{ id, name string }

// parseUsers reads list_users output: a header line
// "userid|context|domain|group|contact|callgroup|effective_caller_id_name|…", one
// line per user and group membership, then "+OK".
func parseUsers(body []byte) []user {
	lines := strings.Split(string(body), "\n")
	if len(lines) == 0 {
		return nil
	}
	cols := strings.Split(strings.TrimSpace(lines[0]), "|")
	idCol, nameCol := -1, -1
	for i, c := range cols {
		switch c {
		case "userid":
			idCol = i
		case "effective_caller_id_name":
			nameCol = i
		}
	}
	if idCol < 0 {
		return nil
	}
	var out []user
	for _, l := range lines[1:] {
		f := strings.Split(strings.TrimSpace(l), "|")
		if len(f) <= idCol || f[idCol] == "" {
			continue
		}
		u := user{id: f[idCol]}
		if nameCol >= 0 && nameCol < len(f) {
			u.name = f[nameCol]
		}
		out = append(out, u)
	}
	return out
}

// parseRegistrations reads `show registrations as json`: the users registered now.
func parseRegistrations(body []byte) []string {
	var v struct {
		Rows []struct {
			User string `json:"reg_user"`
		} `json:"rows"`
	}
	if json.Unmarshal(body, &v) != nil {
		return nil
	}
	out := make([]string, 0, len(v.Rows))
	for _, r := range v.Rows {
		if r.User != "" {
			out = append(out, r.User)
		}
	}
	return out
}

// Counts reports the PBX traffic seen, for metrics.
func (c *Connector) Counts() hub.ConnectorCounts {
	c.mu.Lock()
	st := c.corr.Stats()
	c.mu.Unlock()
	return hub.ConnectorCounts{Events: st.Events, Channels: st.Channels, Evicted: st.Evicted, Disconnects: c.disconnects.Load()}
}
