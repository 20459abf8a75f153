package freeswitch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"callbridge/internal/call"
	"callbridge/internal/freeswitch/esl"
	"callbridge/internal/hub"
)

// Replay is a connector that plays recorded event socket traffic instead of a live
// PBX: the first recording as one session, each further one as the session after a
// reconnect, reconciled exactly as a live reconnect is (the `show channels` and
// `show calls` replies it holds, then lost calls ended). It is what
// `callbridge freeswitch replay` runs through the real hub.
type Replay struct {
	corr   *Correlator
	id     string
	files  []io.Reader
	agents map[string]string
	done   chan struct{}
	err    error
	buf    []call.Update
}

// NewReplay builds a replay of files for the PBX o.PBX.
func NewReplay(o Options, files ...io.Reader) (*Replay, error) {
	if len(files) == 0 {
		return nil, errors.New("freeswitch: replay: no recording")
	}
	corr, err := NewCorrelator(o)
	if err != nil {
		return nil, err
	}
	return &Replay{corr: corr, id: o.PBX, files: files, agents: map[string]string{}, done: make(chan struct{})}, nil
}

// ID is the PBX id.
func (r *Replay) ID() string { return r.id }

// Kind names the PBX kind.
func (r *Replay) Kind() string { return "freeswitch" }

// Done is closed when every recording has been played.
func (r *Replay) Done() <-chan struct{} { return r.done }

// Err is the first error met while reading the recordings.
func (r *Replay) Err() error { return r.err }

// Control refuses: a recording cannot be told to do anything.
func (r *Replay) Control(context.Context, hub.Command) error {
	return fmt.Errorf("freeswitch: replay: %w: a recording cannot be controlled", hub.ErrUnsupported)
}

// Run plays the recordings into sink, then waits for ctx to end.
func (r *Replay) Run(ctx context.Context, sink hub.Sink) error {
	var last time.Time
	for i, f := range r.files {
		if ctx.Err() != nil {
			break
		}
		if i > 0 {
			sink.Disconnected(r.id, errors.New("recording: connection dropped"), last)
		}
		r.corr.BeginSnapshot()
		var err error
		if last, err = r.play(ctx, f, sink, i > 0, last); err != nil {
			r.err = fmt.Errorf("freeswitch: replay: recording %d: %w", i+1, err)
			break
		}
	}
	close(r.done)
	<-ctx.Done()
	return nil
}

// play feeds one recording. A first session starts from nothing; in a reconnect
// session the snapshot ends with the first event after the `show … as json`
// replies it contains, as the live connector ends it once those replies are in.
func (r *Replay) play(ctx context.Context, f io.Reader, sink hub.Sink, reconnect bool, last time.Time) (time.Time, error) {
	rd := esl.NewReader(f)
	open, listed := true, false
	end := func() {
		if !open {
			return
		}
		open = false
		alive, out := r.corr.EndSnapshot(r.buf[:0], last)
		sink.Connected(r.id, alive, last)
		r.send(sink, out)
		sink.Synced(r.id, last)
	}
	for ctx.Err() == nil {
		m, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return last, err
		}
		if m.Is("api/response") && reconnect && open && bytes.Contains(m.Body(), []byte(`"row_count"`)) {
			if err := r.corr.Snapshot(m.Body()); err != nil {
				return last, err
			}
			listed = true
			continue
		}
		e := m.Event()
		if e == nil {
			continue
		}
		at := last
		if ts, ok := eventTime(e); ok {
			at = ts
		}
		if open && (!reconnect || listed) {
			// A first session has nothing to reconcile: it starts with its first
			// event. A reconnect's snapshot is complete once its lists are in.
			if last.IsZero() {
				last = at
			}
			end()
		}
		last = at
		r.send(sink, r.corr.Feed(r.buf[:0], e, at))
		if st, ok := presence(r.id, r.corr, r.agents, e, at); ok {
			sink.Status(st)
		}
	}
	end()
	return last, nil
}

func (r *Replay) send(sink hub.Sink, ups []call.Update) {
	for _, u := range ups {
		sink.Update(u)
	}
	r.buf = ups[:0]
}
