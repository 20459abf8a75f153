// Package pbxconn keeps a PBX link up, whatever the protocol: it dials (TCP, or TLS
// when configured) and runs sessions one after another, waiting between attempts
// with exponential backoff and jitter. The Asterisk and FreeSWITCH connectors both
// run on it; what a session does is theirs.
package pbxconn

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"time"
)

// Defaults of Backoff.
const (
	DefaultBackoffMin = 500 * time.Millisecond
	DefaultBackoffMax = 30 * time.Second
)

// Backoff bounds the wait between attempts: it doubles per failure from Min up to
// Max. A zero Min takes DefaultBackoffMin; a Max below Min takes DefaultBackoffMax
// (or Min, if larger).
type Backoff struct {
	Min, Max time.Duration
}

// Normalized returns b with its defaults filled in.
func (b Backoff) Normalized() Backoff {
	if b.Min <= 0 {
		b.Min = DefaultBackoffMin
	}
	if b.Max < b.Min {
		b.Max = max(DefaultBackoffMax, b.Min)
	}
	return b
}

// Wait is the wait before attempt n (1 after the first failure), with "equal
// jitter": half fixed, half random, so many gateways do not reconnect to a restarted
// PBX in lockstep.
func (b Backoff) Wait(n int) time.Duration {
	b = b.Normalized()
	d := b.Min
	for i := 1; i < n && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	return d/2 + rand.N(d/2+1)
}

// DialFunc opens a network connection (net.Dialer.DialContext).
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Dial connects to addr within 10 s, with TLS when tc is set (its ServerName
// defaulting to addr's host). A nil dial uses a net.Dialer with TCP keepalive. Its
// errors name the step ("dial …", "tls …"); the connector prefixes its own name.
func Dial(ctx context.Context, dial DialFunc, addr string, tc *tls.Config) (net.Conn, error) {
	if dial == nil {
		d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
		dial = d.DialContext
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := dial(dctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	if tc != nil {
		cfg := tc.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName, _, _ = net.SplitHostPort(addr)
		}
		c := tls.Client(conn, cfg)
		if err := c.HandshakeContext(dctx); err != nil {
			conn.Close()
			return nil, fmt.Errorf("tls %s: %w", addr, err)
		}
		conn = c
	}
	return conn, nil
}

// Loop runs one PBX link's sessions until its context ends.
type Loop struct {
	// Name is the PBX kind, for the log ("asterisk", "freeswitch").
	Name    string
	Backoff Backoff
	Log     *slog.Logger
	// Session runs one connection until it ends; connected says whether it came up
	// (the hub was told so), err why it ended.
	Session func(ctx context.Context) (connected bool, err error)
	// Down is told that a session that had come up ended, and why (on shutdown, the
	// context's cause).
	Down func(reason error, at time.Time)
}

// Run runs sessions until ctx ends: after a session that came up the failure count
// starts again; each failure waits Backoff.Wait, the reason logged.
func (l Loop) Run(ctx context.Context) {
	failures := 0
	for ctx.Err() == nil {
		connected, err := l.Session(ctx)
		if ctx.Err() != nil {
			if connected {
				l.Down(context.Cause(ctx), time.Now())
			}
			return
		}
		if connected {
			failures = 0
			l.Down(err, time.Now())
		}
		failures++
		wait := l.Backoff.Wait(failures)
		l.Log.Warn(l.Name+" connection down; reconnecting", "reason", err, "in", wait.Round(time.Millisecond), "attempt", failures)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}
