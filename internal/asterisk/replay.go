package asterisk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"callbridge/internal/asterisk/ami"
	"callbridge/internal/call"
	"callbridge/internal/hub"
)

// Replay is a connector that plays recorded AMI traffic instead of a live PBX: the
// first recording as one session, each further one as the session after a reconnect,
// reconciled exactly as a live reconnect is (snapshot lists, then lost calls ended).
// It is what `callbridge asterisk replay` runs through the real hub.
type Replay struct {
	corr  *Correlator
	id    string
	files []io.Reader
	done  chan struct{}
	err   error
	buf   []call.Update
}

// NewReplay builds a replay of files for the PBX o.PBX.
func NewReplay(o Options, files ...io.Reader) (*Replay, error) {
	if len(files) == 0 {
		return nil, errors.New("asterisk: replay: no recording")
	}
	corr, err := NewCorrelator(o)
	if err != nil {
		return nil, err
	}
	return &Replay{corr: corr, id: o.PBX, files: files, done: make(chan struct{})}, nil
}

// ID is the PBX id.
func (r *Replay) ID() string { return r.id }

// Kind names the PBX kind.
func (r *Replay) Kind() string { return "asterisk" }

// Done is closed when every recording has been played.
func (r *Replay) Done() <-chan struct{} { return r.done }

// Err is the first error met while reading the recordings.
func (r *Replay) Err() error { return r.err }

// Control refuses: a recording cannot be told to do anything.
func (r *Replay) Control(context.Context, hub.Command) error {
	return fmt.Errorf("asterisk: replay: %w: a recording cannot be controlled", hub.ErrUnsupported)
}

// Run plays the recordings into sink, then waits for ctx to end.
func (r *Replay) Run(ctx context.Context, sink hub.Sink) error {
	defer func() {
		select {
		case <-r.done:
		default:
			close(r.done)
		}
	}()
	var last time.Time
	for i, f := range r.files {
		if ctx.Err() != nil {
			return nil
		}
		if i > 0 {
			sink.Disconnected(r.id, errors.New("recording: connection dropped"), last)
			r.corr.BeginSnapshot()
		}
		var err error
		if last, err = r.play(ctx, f, sink, i > 0, last); err != nil {
			r.err = fmt.Errorf("asterisk: replay: recording %d: %w", i+1, err)
			break
		}
	}
	// The recording ends before every final record's wait is over: what a live
	// connection would produce a little later is produced now.
	r.send(sink, r.corr.Expire(r.buf[:0], last.Add(time.Hour)))
	close(r.done)
	<-ctx.Done()
	return nil
}

// play feeds one recording. In a reconnect session the snapshot ends with the last
// list it contains (CoreShowChannels, Status, BridgeList), as the live connector
// ends it once those actions complete.
func (r *Replay) play(ctx context.Context, f io.Reader, sink hub.Sink, reconnect bool, last time.Time) (time.Time, error) {
	rd := ami.NewReader(f)
	snapshotOpen := reconnect
	listsDone := 0
	first := true
	for ctx.Err() == nil {
		p, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return last, err
		}
		at := packetTime(p, last)
		if first && !reconnect {
			sink.Connected(r.id, nil, at)
		}
		first = false
		if !at.IsZero() {
			last = at
		}
		r.send(sink, r.corr.Feed(r.buf[:0], p, at))
		if st, ok := presence(r.id, r.corr.r, p, at); ok {
			sink.Status(st)
		}
		if snapshotOpen && strings.EqualFold(p.Get("EventList"), "Complete") {
			listsDone++
		}
		if snapshotOpen && listsDone > 0 && !p.Has("ActionID") {
			// The first live event after the lists: the snapshot was complete.
			r.endSnapshot(sink, last)
			snapshotOpen = false
		}
	}
	if snapshotOpen {
		r.endSnapshot(sink, last)
	}
	return last, nil
}

func (r *Replay) endSnapshot(sink hub.Sink, at time.Time) {
	alive, out := r.corr.EndSnapshot(r.buf[:0], at)
	sink.Connected(r.id, alive, at)
	r.send(sink, out)
	sink.Synced(r.id, at)
}

func (r *Replay) send(sink hub.Sink, ups []call.Update) {
	for _, u := range ups {
		sink.Update(u)
	}
	r.buf = ups[:0]
}

// packetTime is the event's Timestamp, else the time of the previous event: a
// recording has no arrival times of its own.
func packetTime(p *ami.Packet, prev time.Time) time.Time {
	if ts, ok := parseStamp(p.GetBytes("Timestamp")); ok {
		return ts
	}
	return prev
}
