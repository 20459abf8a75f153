package pbxconn

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestBackoff(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: time.Second}
	for _, tt := range []struct {
		n    int
		full time.Duration
	}{{1, 100 * time.Millisecond}, {2, 200 * time.Millisecond}, {4, 800 * time.Millisecond}, {5, time.Second}, {50, time.Second}} {
		for range 100 {
			if w := b.Wait(tt.n); w < tt.full/2 || w > tt.full {
				t.Fatalf("attempt %d: wait %v, want %v to %v", tt.n, w, tt.full/2, tt.full)
			}
		}
	}
	if d := (Backoff{}).Normalized(); d.Min != DefaultBackoffMin || d.Max != DefaultBackoffMax {
		t.Fatalf("defaults %+v", d)
	}
	if d := (Backoff{Min: time.Minute}).Normalized(); d.Max != time.Minute {
		t.Fatalf("a Min above the default Max: %+v", d)
	}
}

// TestLoop: failures wait and retry, a session that came up and ended is reported
// down with its reason, and the loop stops with its context, reporting the session
// that was up then.
func TestLoop(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var downs []string
	n := 0
	up := make(chan struct{})
	errDial := errors.New("connection refused")
	Loop{
		Name: "test", Backoff: Backoff{Min: time.Millisecond, Max: 2 * time.Millisecond},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Session: func(ctx context.Context) (bool, error) {
			n++
			switch n {
			case 1, 2:
				return false, errDial
			case 3:
				return true, errors.New("read: EOF")
			}
			close(up)
			go cancel()
			<-ctx.Done()
			return true, ctx.Err()
		},
		Down: func(reason error, _ time.Time) {
			mu.Lock()
			downs = append(downs, reason.Error())
			mu.Unlock()
		},
	}.Run(ctx)
	<-up
	if n != 4 || strings.Join(downs, "|") != "read: EOF|context canceled" {
		t.Fatalf("%d sessions, downs %q", n, downs)
	}
}

func TestDial(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	c, err := Dial(context.Background(), nil, ln.Addr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	(<-accepted).Close()

	// TLS to a peer that is not a TLS server fails with the reason.
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Write([]byte("Asterisk Call Manager/11.0.0\r\n"))
			c.Close()
		}
	}()
	if _, err := Dial(context.Background(), nil, ln.Addr().String(), &tls.Config{}); err == nil || !strings.HasPrefix(err.Error(), "tls ") {
		t.Fatalf("TLS to a plain server: %v", err)
	}
	ln.Close()
	if _, err := Dial(context.Background(), nil, ln.Addr().String(), nil); err == nil || !strings.HasPrefix(err.Error(), "dial ") {
		t.Fatalf("dial to a closed port: %v", err)
	}
}
