package api_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

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
