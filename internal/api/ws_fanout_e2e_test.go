package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"callbridge/internal/call"
)

// ringAsync starts a call to ext without waiting for it; it returns the call id.
func (e *env) ringAsync(pbx *fakePBX, ext string) string {
	id := uuid.NewString()
	pbx.update(call.Update{PBXCallID: "p-" + id, CallID: id, Time: time.Now(), Kind: call.KindRing,
		Direction: call.DirectionIn, Customer: "89066800404", Extensions: []string{ext}})
	return id
}

// TestWSFanoutRouting: two connections on different extensions each get only
// their own events, in order.
func TestWSFanoutRouting(t *testing.T) {
	e := newEnv(t)
	e.seed()
	conns := map[string]*wsClient{}
	for _, ext := range []string{"101", "102"} {
		c := e.wsDial(t, e.keys["crm"], "")
		c.next()
		c.subscribe(`{"subscribe": {"objects": ["` + ext + `"]}}`)
		conns[ext] = c
	}
	want := map[string][]string{}
	for i := range 50 {
		ext := []string{"101", "102"}[i%2]
		want[ext] = append(want[ext], e.ringAsync(e.pbx, ext))
	}
	for ext, c := range conns {
		var got []string
		seq := int64(0)
		for len(got) < len(want[ext]) {
			ev := c.event()
			if !slices.Contains(ev.Extensions, ext) || ev.Seq <= seq {
				t.Fatalf("%s got %+v after seq %d", ext, ev, seq)
			}
			seq = ev.Seq
			got = append(got, ev.Call.ID)
		}
		if !slices.Equal(got, want[ext]) {
			t.Fatalf("%s got %v, want %v", ext, got, want[ext])
		}
	}
}

// TestWSFanoutSeam: a connection replaying from an old ?after while events keep
// coming switches to the live stream with no gap and no duplicate.
func TestWSFanoutSeam(t *testing.T) {
	e := newEnv(t)
	e.seed()
	old := e.hub.LastSeq()
	// Far more than one batch behind when it connects.
	var last string
	for i := range 600 {
		last = e.ringAsync(e.pbx, []string{"101", "102"}[i%2])
	}
	checkFor(t, func() error {
		_, err := e.st.Call(context.Background(), "default", last)
		return err
	})
	var final string
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 400 {
			id := e.ringAsync(e.pbx, []string{"101", "102"}[i%2])
			if i%2 == 0 {
				final = id
			}
			time.Sleep(time.Millisecond)
		}
	})
	// Connect once the live events are flowing.
	checkFor(t, func() error {
		if e.hub.LastSeq() < old+650 {
			return errors.New("not yet")
		}
		return nil
	})
	c := e.wsDial(t, e.keys["crm"], "?after="+strconv.FormatInt(old, 10))
	c.subscribe(`{"subscribe": {"objects": ["101"]}}`)
	var got []int64
	wg.Wait()
	for {
		ev := c.event()
		if n := len(got); n > 0 && ev.Seq <= got[n-1] {
			t.Fatalf("seq %d after %d: a duplicate or out of order", ev.Seq, got[n-1])
		}
		got = append(got, ev.Seq)
		if ev.Call.ID == final {
			break
		}
	}
	// Every event of 101 in the log up to the last one received, nothing else.
	sub := e.hub.Subscribe(old)
	var want []int64
	for sub.Cursor() < got[len(got)-1] {
		evs, err := sub.Next(context.Background(), 512)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			if ev.Seq <= got[len(got)-1] && ev.Concerns("101", "") {
				want = append(want, ev.Seq)
			}
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %d events, want %d (a gap or an extra one)\ngot  %v\nwant %v", len(got), len(want), got, want)
	}
}

// TestWSSlowConsumerCloseCode: a client that stops reading while its events keep
// coming is closed with 4000 "resume from SEQ"; SEQ is the last event it was sent,
// so resuming with ?after=SEQ loses nothing and repeats nothing.
func TestWSSlowConsumerCloseCode(t *testing.T) {
	e := newEnv(t)
	e.seed()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// A small receive buffer, so the server's writes stall soon after the client
	// stops reading.
	dialer := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var err error
		rc.Control(func(fd uintptr) { err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return err
	}}
	hc := &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}}
	c, _, err := websocket.Dial(ctx, e.wsURL(""), &websocket.DialOptions{HTTPClient: hc,
		HTTPHeader: http.Header{"Authorization": {"Bearer " + e.keys["crm"]}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	c.SetReadLimit(16 << 20)
	read := func() ([]byte, error) {
		_, b, err := c.Read(ctx)
		return b, err
	}
	if _, err := read(); err != nil { // calls.snapshot
		t.Fatal(err)
	}
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"subscribe": {"objects": ["101"]}}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := read(); err != nil { // the subscription's answer
		t.Fatal(err)
	}
	// Not reading now: far more events than the queue and the socket buffers hold.
	const n = 6000
	for range n {
		e.ringAsync(e.pbx, "101")
	}
	checkFor(t, func() error {
		if s := e.hub.LastSeq(); s < n {
			return fmt.Errorf("seq %d", s)
		}
		return nil
	})
	var last int64
	got := 0
	for {
		b, err := read()
		if err != nil {
			var ce websocket.CloseError
			if !errors.As(err, &ce) {
				t.Fatalf("after %d events: %v, want a close frame", got, err)
			}
			if ce.Code != 4000 || ce.Reason != "resume from "+strconv.FormatInt(last, 10) {
				t.Fatalf("close %d %q after %d events, last seq %d; want 4000 \"resume from %d\"", ce.Code, ce.Reason, got, last, last)
			}
			break
		}
		var ev struct {
			Seq int64 `json:"seq"`
		}
		if json.Unmarshal(b, &ev) == nil && ev.Seq > 0 {
			if ev.Seq <= last {
				t.Fatalf("seq %d after %d", ev.Seq, last)
			}
			last = ev.Seq
			got++
		}
	}
	t.Logf("%d of %d events delivered, then 4000 \"resume from %d\"", got, n, last)
	if got == 0 || got >= n {
		t.Fatalf("%d of %d events before the close: the consumer was not cut off", got, n)
	}
}
