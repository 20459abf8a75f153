package asterisk

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

	"callbridge/internal/asterisk/ami"
	"callbridge/internal/call"
	"callbridge/internal/hub"
	"callbridge/internal/pbxconn"
)

// Config is one Asterisk PBX connection.
type Config struct {
	// ID is the PBX id of configuration.
	ID string
	// Address is AMI's host:port.
	Address string
	// TLS, when set, connects with TLS.
	TLS   *tls.Config
	Login Login
	// Dialplan conventions, for direction.
	Correlator Options
	// ExtensionChannel reaches an extension; "{ext}" is replaced (default PJSIP/{ext}).
	ExtensionChannel string
	// OutboundContext is where click-to-call dials the customer (default from-internal).
	OutboundContext string
	// TransferContext is where transfers dial their target (default OutboundContext).
	TransferContext string
	// ConferenceContext is where a conference room is dialled (default OutboundContext).
	ConferenceContext string
	// Members are the PBX's extensions when PJSIPShowEndpoints cannot list them.
	Members []string
	// Keepalive is the interval of Ping actions (default 20 s).
	Keepalive time.Duration
	// Backoff bounds the wait between reconnection attempts (default 500 ms to
	// 30 s); the wait doubles per failure, with jitter.
	Backoff pbxconn.Backoff
	// Session tunes each connection.
	Session SessionOptions
	// Dial opens the TCP connection (default a net.Dialer with a 10 s timeout).
	Dial pbxconn.DialFunc
}

// Connector is callbridge's connection to one Asterisk: it keeps an AMI session up,
// feeds the correlator and the hub, and carries control commands back as actions.
type Connector struct {
	cfg Config
	log *slog.Logger

	// out takes updates to the hub in the order the correlator made them, with a
	// (re)connect's Connected before anything made while it reconciled.
	out pbxconn.Outbox
	// mu guards the correlator, the originate ids and the clock: the session's
	// reader goroutine and the expiry ticker both feed the correlator.
	mu         sync.Mutex
	corr       *Correlator
	buf        []call.Update
	originated pbxconn.Originations // click-to-calls not yet seen, by preset channel id
	// clock is the PBX's, from event Timestamps: it times list items and expiry.
	clock pbxconn.Clock

	// disconnects counts sessions that ended, for metrics.
	disconnects atomic.Uint64

	smu  sync.Mutex
	sess *Session
}

// NewConnector checks cfg and builds a connector; it does not connect until Run.
func NewConnector(cfg Config, log *slog.Logger) (*Connector, error) {
	if cfg.ID == "" {
		return nil, errors.New("asterisk: connector needs an id")
	}
	if _, _, err := net.SplitHostPort(cfg.Address); err != nil {
		return nil, fmt.Errorf("asterisk: %s: address %q: %w", cfg.ID, cfg.Address, err)
	}
	if cfg.ExtensionChannel == "" {
		cfg.ExtensionChannel = "PJSIP/{ext}"
	}
	if !strings.Contains(cfg.ExtensionChannel, "{ext}") {
		return nil, fmt.Errorf("asterisk: %s: extension channel %q has no {ext}", cfg.ID, cfg.ExtensionChannel)
	}
	if cfg.OutboundContext == "" {
		cfg.OutboundContext = "from-internal"
	}
	if cfg.TransferContext == "" {
		cfg.TransferContext = cfg.OutboundContext
	}
	if cfg.ConferenceContext == "" {
		cfg.ConferenceContext = cfg.OutboundContext
	}
	if cfg.Keepalive <= 0 {
		cfg.Keepalive = 20 * time.Second
	}
	cfg.Backoff = cfg.Backoff.Normalized()
	cfg.Correlator.PBX = cfg.ID
	corr, err := NewCorrelator(cfg.Correlator)
	if err != nil {
		return nil, fmt.Errorf("asterisk: %s: %w", cfg.ID, err)
	}
	if log == nil {
		log = slog.Default()
	}
	return &Connector{cfg: cfg, log: log.With("pbx", cfg.ID), corr: corr}, nil
}

// ID is the PBX id.
func (c *Connector) ID() string { return c.cfg.ID }

// Kind names the PBX kind, as in configuration.
func (c *Connector) Kind() string { return "asterisk" }

// Run keeps a session up until ctx ends, reconnecting with exponential backoff and
// jitter; every session starts with a snapshot that reconciles the hub.
func (c *Connector) Run(ctx context.Context, sink hub.Sink) error {
	pbxconn.Loop{
		Name: "asterisk", Backoff: c.cfg.Backoff, Log: c.log,
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
		return nil, fmt.Errorf("asterisk: %w", err)
	}
	return conn, nil
}

// session runs one connection: dial, login, snapshot, then events until the session
// or ctx ends. connected says whether the hub was told the link is up.
func (c *Connector) session(ctx context.Context, sink hub.Sink) (connected bool, err error) {
	conn, err := c.dial(ctx)
	if err != nil {
		return false, err
	}
	// The snapshot begins before login: events can follow the login response at once,
	// and the correlator must know they arrive while it reconciles.
	c.mu.Lock()
	c.corr.BeginSnapshot()
	c.mu.Unlock()
	c.out.Hold()
	// Whatever the session kept and did not get to send goes out when it ends.
	defer c.out.Release(sink.Update, nil, nil)
	raw, _ := sink.(hub.RawSink)
	handler := func(p *ami.Packet, arrival time.Time) {
		var at time.Time
		c.out.Produce(sink.Update, func() []call.Update {
			c.mu.Lock()
			defer c.mu.Unlock()
			if ts, ok := parseStamp(p.GetBytes("Timestamp")); ok {
				c.clock.Observe(ts, arrival)
			}
			at = c.clock.Now(arrival)
			c.buf = c.corr.Feed(c.buf[:0], p, at)
			return c.originated.Apply(c.buf)
		})
		if st, ok := presence(c.cfg.ID, c.corr.r, p, at); ok {
			sink.Status(st)
		}
		if raw != nil && raw.RawWanted(c.cfg.ID) {
			raw.Raw(c.cfg.ID, rawEvent(c.cfg.ID, p, at))
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
	c.log.Info("asterisk connected", "address", c.cfg.Address, "banner", s.Banner())

	if err := c.snapshot(ctx, s, sink); err != nil {
		return false, err
	}
	c.members(ctx, s, sink)

	ping := time.NewTicker(c.cfg.Keepalive)
	defer ping.Stop()
	expire := time.NewTicker(time.Second)
	defer expire.Stop()
	for {
		select {
		case <-ctx.Done():
			lctx, cancel := context.WithTimeout(context.Background(), time.Second)
			s.Action(lctx, "Logoff")
			cancel()
			return true, ctx.Err()
		case <-s.Done():
			return true, s.Err()
		case <-ping.C:
			pctx, cancel := context.WithTimeout(ctx, c.cfg.Keepalive)
			_, err := s.Action(pctx, "Ping")
			cancel()
			if err != nil && ctx.Err() == nil {
				s.fail(fmt.Errorf("asterisk: keepalive: %w", err))
			}
		case now := <-expire.C:
			c.out.Produce(sink.Update, func() []call.Update {
				c.mu.Lock()
				defer c.mu.Unlock()
				c.buf = c.corr.Expire(c.buf[:0], c.clock.Now(now))
				return c.originated.Apply(c.buf)
			})
		}
	}
}

// snapshot asks Asterisk what exists now and reconciles: the correlator sees the list
// items in stream order with live events, and EndSnapshot says which calls survive.
func (c *Connector) snapshot(ctx context.Context, s *Session, sink hub.Sink) error {
	for _, action := range []string{"CoreShowChannels", "Status", "BridgeList"} {
		if _, err := s.ActionList(ctx, action); err != nil {
			if errors.Is(err, ErrActionFailed) {
				// A user without the permission for one list still gets the others.
				c.log.Warn("snapshot list refused", "action", action, "err", err)
				continue
			}
			return fmt.Errorf("asterisk: snapshot: %w", err)
		}
	}
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
	return nil
}

// members tells the hub the PBX's extensions: from configuration, else from its PJSIP
// endpoints (trunks left out).
func (c *Connector) members(ctx context.Context, s *Session, sink hub.Sink) {
	var exts []hub.Extension
	seen := map[string]bool{}
	add := func(n string) {
		if n != "" && !seen[n] && c.corr.r.isInternalNumber(n) {
			seen[n] = true
			exts = append(exts, hub.Extension{Number: n})
		}
	}
	for _, m := range c.cfg.Members {
		add(m)
	}
	if len(c.cfg.Members) == 0 {
		items, err := s.ActionList(ctx, "PJSIPShowEndpoints")
		if err != nil {
			c.log.Info("cannot list PJSIP endpoints; members come from configuration only", "err", err)
		}
		for _, it := range items {
			add(it.Get("ObjectName"))
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

func (c *Connector) session0() (*Session, error) {
	c.smu.Lock()
	defer c.smu.Unlock()
	if c.sess == nil {
		return nil, fmt.Errorf("asterisk: %s: %w", c.cfg.ID, ErrNotConnected)
	}
	return c.sess, nil
}

// ErrNotConnected: a command came while the AMI link is down. It wraps
// hub.ErrNoConnector, so the API answers 503.
var ErrNotConnected = fmt.Errorf("asterisk: not connected: %w", hub.ErrNoConnector)

// Test opens a separate session, logs in, pings and logs off: it proves the address,
// the credentials and that the manager answers, without touching the running link.
func (c *Connector) Test(ctx context.Context) error {
	conn, err := c.dial(ctx)
	if err != nil {
		return err
	}
	s, err := Open(ctx, conn, Login{Username: c.cfg.Login.Username, Secret: c.cfg.Login.Secret, MD5: c.cfg.Login.MD5, Events: "off"}, c.cfg.Session, nil)
	if err != nil {
		return err
	}
	defer s.Close()
	if _, err := s.Action(ctx, "Ping"); err != nil {
		return err
	}
	s.Action(ctx, "Logoff")
	return nil
}

// rawEvent encodes an AMI packet as a pbx.raw event: its fields as a JSON object, a
// repeated key (ChanVariable) as an array of its values in order.
func rawEvent(pbx string, p *ami.Packet, at time.Time) []byte {
	fields := make(map[string]any, p.Len())
	for _, f := range p.Fields() {
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
	b, _ := json.Marshal(struct {
		Type call.EventType `json:"type"`
		PBX  string         `json:"pbx"`
		Time time.Time      `json:"time"`
		Data map[string]any `json:"data"`
	}{call.EventRaw, pbx, at.UTC(), fields})
	return b
}

// Counts reports the PBX traffic seen, for metrics.
func (c *Connector) Counts() hub.ConnectorCounts {
	c.mu.Lock()
	st := c.corr.Stats()
	c.mu.Unlock()
	return hub.ConnectorCounts{Events: st.Events, Channels: st.Channels, Evicted: st.Evicted, Disconnects: c.disconnects.Load()}
}
