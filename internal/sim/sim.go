// Package sim is a simulated PBX: callbridge's default connector, so a bare machine has
// calls to show, and a load generator for the hub behind it.
//
// Every call is a script of realistic steps (ring, answer, hold, transfer, hang-up)
// played by one scheduler goroutine from a min-heap of due steps, so thousands of calls
// per second cost one timer, not one goroutine each. Updates are queued in the order the
// steps happen and handed to the sink by one sender goroutine, so neither the scheduler
// nor Control ever calls the sink while holding the simulator's lock.
package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"

	"callbridge/internal/call"
	"callbridge/internal/hub"
)

// Errors Control and Start return, wrapped with the detail.
var (
	// ErrNoCall: the command names a call the simulator does not have (never had, or
	// already ended).
	ErrNoCall = errors.New("sim: no such call")
	// ErrBusy: the extension is already in a call.
	ErrBusy = errors.New("sim: extension busy")
	// ErrNoExtension: the number is not one of the simulator's extensions.
	ErrNoExtension = errors.New("sim: no such extension")
)

const (
	maxExtensions = 10000
	// maxRate and maxSpeed only keep a typo from asking for the impossible; the
	// scheduler's real limit is what BenchmarkSchedule measures.
	maxRate  = 1e6
	maxSpeed = 1e6
	// maxPrefixDigits keeps prefix + 7 random digits within E.164's 15 digits.
	maxPrefixDigits = 8
	// maxBatch bounds the steps run under one lock hold, so Control never waits long
	// behind a burst.
	maxBatch = 1024
	// maxBacklog is how many updates may wait for the sink before the scheduler stops
	// producing: a slow hub slows the simulation down instead of growing its memory.
	maxBacklog = 8192
	// maxLag: arrivals further behind than this (Run was stopped, or a slow sink held
	// the scheduler back) are skipped rather than replayed as one burst.
	maxLag = time.Second
	// defaultPrefix makes generated customers Moscow numbers, like the seeds' examples.
	defaultPrefix = "+7495"
	// warnEvery rate-limits the overload warning.
	warnEvery = 10 * time.Second
	// livePerExtension and liveSlack size maxLive: calls beyond the extensions are
	// busy or ringing-group calls that end within seconds; more means overload.
	livePerExtension = 4
	liveSlack        = 4096
)

// Config configures a simulated PBX.
type Config struct {
	// ID is the PBX id every update carries, e.g. "sim".
	ID string
	// Extensions is how many extensions the PBX has, 1..10000: numbered from 101 when
	// there are at most 899, otherwise from 10000, so they are always 3-5 digits.
	Extensions int
	// Rate is how many new calls per second arrive on their own (Poisson arrivals);
	// 0 means calls happen only through Start and Control.
	Rate float64
	// Speed scales time: 10 makes every ring, talk and hold 10 times shorter. 0 means 1.
	// It does not scale Rate.
	Speed float64
	// Seed seeds the choice of flows, extensions and durations; 0 picks one at random.
	Seed int64
	// ExternalPrefix starts every generated customer number (7 random digits follow)
	// and the DID ("+7495" gives "+74951234567" and the DID "+74950000000").
	ExternalPrefix string
	// ExtensionStatus makes the PBX report extension.status (ringing, busy,
	// available) whenever an extension's line changes; off by default because at load
	// it triples what the hub has to store.
	ExtensionStatus bool
}

// PBX is a simulated PBX; it implements hub.Connector. Its calls outlive one Run: a
// Run after a stopped one reports them as alive, as a real PBX would after a link drop.
type PBX struct {
	id     string
	speed  float64
	prefix string
	did    string
	// boot tells this process's call ids from a previous process's, whatever the seed.
	boot    string
	base    int
	exts    []string
	extStat bool
	epoch   time.Time
	log     *slog.Logger

	// wake tells the scheduler a step was scheduled from outside it; kick tells the
	// sender there is output; drained tells a held-back scheduler the backlog shrank.
	wake    chan struct{}
	kick    chan struct{}
	drained chan struct{}

	mu          sync.Mutex
	rng         *rand.Rand
	rate        float64
	nextArrival time.Duration
	seq         uint64
	opened      int // calls of the opening sequence generated so far
	calls       map[string]*simCall
	byCallID    map[string]*simCall
	lines       []line
	paused      []bool
	steps       callHeap
	out         []item
	spare       []item
	running     bool
	warned      time.Time
	// skipped counts arrivals dropped because maxLive calls were in progress.
	skipped int
	// maxLive bounds the calls in progress, so a rate beyond what the extensions
	// (or the scheduler) can take costs skipped arrivals, not unbounded memory.
	maxLive int
}

// The hub drives every PBX through hub.Connector; the simulator must stay one.
var _ hub.Connector = (*PBX)(nil)

// item is one thing for the sink, queued in the order it happened.
type item struct {
	u      call.Update
	status *hub.Status
}

// New validates cfg and builds a PBX; logger may be nil.
func New(cfg Config, logger *slog.Logger) (*PBX, error) {
	if cfg.ID == "" {
		return nil, errors.New("sim: empty id")
	}
	if cfg.Extensions < 1 || cfg.Extensions > maxExtensions {
		return nil, fmt.Errorf("sim: extensions %d out of range 1..%d", cfg.Extensions, maxExtensions)
	}
	if err := checkRate(cfg.Rate); err != nil {
		return nil, err
	}
	speed := cfg.Speed
	if !(speed >= 0) || math.IsInf(speed, 0) || speed > maxSpeed {
		return nil, fmt.Errorf("sim: speed %v out of range 0..%v", cfg.Speed, float64(maxSpeed))
	}
	if speed == 0 {
		speed = 1
	}
	prefix := cfg.ExternalPrefix
	if prefix == "" {
		prefix = defaultPrefix
	}
	if !validPrefix(prefix) {
		return nil, fmt.Errorf("sim: external prefix %q: want an optional + and 1..%d digits", prefix, maxPrefixDigits)
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Int64()
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	base := 101
	if cfg.Extensions > 899 {
		base = 10000
	}
	exts := make([]string, cfg.Extensions)
	for i := range exts {
		exts[i] = strconv.Itoa(base + i)
	}
	return &PBX{
		id:       cfg.ID,
		speed:    speed,
		prefix:   prefix,
		did:      prefix + "0000000",
		boot:     fmt.Sprintf("%08x", rand.Uint32()),
		base:     base,
		exts:     exts,
		extStat:  cfg.ExtensionStatus,
		epoch:    time.Now(),
		log:      logger.With("pbx", cfg.ID),
		wake:     make(chan struct{}, 1),
		kick:     make(chan struct{}, 1),
		drained:  make(chan struct{}, 1),
		rng:      rand.New(rand.NewPCG(uint64(seed), uint64(seed)^0x9e3779b97f4a7c15)),
		rate:     cfg.Rate,
		calls:    map[string]*simCall{},
		byCallID: map[string]*simCall{},
		lines:    make([]line, cfg.Extensions),
		paused:   make([]bool, cfg.Extensions),
		maxLive:  livePerExtension*cfg.Extensions + liveSlack,
	}, nil
}

func checkRate(r float64) error {
	if !(r >= 0) || math.IsInf(r, 0) || r > maxRate {
		return fmt.Errorf("sim: rate %v out of range 0..%v", r, float64(maxRate))
	}
	return nil
}

func validPrefix(s string) bool {
	if len(s) > 0 && s[0] == '+' {
		s = s[1:]
	}
	if len(s) == 0 || len(s) > maxPrefixDigits {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// ID is the PBX id from configuration.
func (p *PBX) ID() string { return p.id }

// Kind names the PBX kind, as in configuration.
func (p *PBX) Kind() string { return "sim" }

// Test checks the PBX answers; the simulator is in-process, so it always does.
func (p *PBX) Test(ctx context.Context) error { return ctx.Err() }

// Live is the number of calls in progress.
func (p *PBX) Live() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.calls)
}

// SetRate changes how many calls per second arrive on their own; 0 stops arrivals and
// lets the calls in progress play out.
func (p *PBX) SetRate(rate float64) error {
	if err := checkRate(rate); err != nil {
		return err
	}
	p.mu.Lock()
	if p.rate == 0 && rate > 0 {
		p.nextArrival = p.since() + p.interarrival(rate)
	}
	p.rate = rate
	p.mu.Unlock()
	signal(p.wake)
	return nil
}

// Run plays calls into sink until ctx ends. It declares the extensions, reports the
// calls it has as alive, and returns nil once its goroutines have stopped, after
// telling the sink it disconnected. Every sink call comes from one goroutine at a time.
func (p *PBX) Run(ctx context.Context, sink hub.Sink) error {
	p.mu.Lock()
	if p.running {
		p.mu.Unlock()
		return errors.New("sim: already running")
	}
	p.running = true
	alive := p.aliveLocked()
	if p.rate > 0 {
		// The first call comes at once: someone who just started callbridge wants to
		// see a call, not wait for the first random arrival.
		p.nextArrival = p.since()
	}
	rate := p.rate
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.running = false
		p.mu.Unlock()
	}()

	p.log.Info("simulated PBX running", "extensions", len(p.exts), "rate", rate, "speed", p.speed, "alive", len(alive))
	sink.Extensions(p.id, p.members())
	sink.Connected(p.id, alive, time.Now().Round(0))
	// The calls it still has are the hub's already: nothing to re-create.
	sink.Synced(p.id, time.Now().Round(0))

	var wg sync.WaitGroup
	wg.Go(func() { p.send(ctx, sink) })
	// Output queued while no Run was active (Start, Control) goes out now.
	signal(p.kick)
	p.loop(ctx)
	wg.Wait()

	sink.Disconnected(p.id, context.Cause(ctx), time.Now().Round(0))
	p.log.Info("simulated PBX stopped", "live", p.Live())
	return nil
}

// aliveLocked lists the calls the PBX has, and also those whose last updates have not
// reached the sink yet (an End queued when the previous Run stopped): the hub must not
// end those as lost before their real End arrives.
func (p *PBX) aliveLocked() []string {
	alive := make([]string, 0, len(p.calls))
	seen := make(map[string]bool, len(p.calls))
	for id := range p.calls {
		alive = append(alive, id)
		seen[id] = true
	}
	for i := range p.out {
		id := p.out[i].u.PBXCallID
		if id != "" && !seen[id] {
			alive = append(alive, id)
			seen[id] = true
		}
	}
	slices.Sort(alive)
	return alive
}

func (p *PBX) members() []hub.Extension {
	m := make([]hub.Extension, len(p.exts))
	for i, e := range p.exts {
		m[i] = hub.Extension{Number: e, Name: "Sim agent " + e, APIEnabled: true}
	}
	return m
}

// loop is the scheduler: it starts arrivals and runs due steps, then sleeps until the
// next one is due or something was scheduled from outside.
func (p *PBX) loop(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		p.mu.Lock()
		now := p.since()
		wall := time.Now().Round(0)
		n := 0
		if p.rate > 0 && now-p.nextArrival > maxLag {
			p.nextArrival = now
		}
		// Arrivals and steps run in the order they are due, so an overload delays
		// both alike instead of starving the calls in progress of their hang-ups.
		for ; n < maxBatch; n++ {
			stepDue := len(p.steps) > 0 && p.steps[0].due <= now
			arrivalDue := p.rate > 0 && p.nextArrival <= now
			if arrivalDue && (!stepDue || p.nextArrival < p.steps[0].due) {
				if len(p.calls) < p.maxLive {
					p.generate(wall, now)
				} else {
					p.skipped++
				}
				// Arrivals keep their own timeline, not "now + gap", so a late timer
				// does not lower the rate.
				p.nextArrival += p.interarrival(p.rate)
			} else if stepDue {
				p.advance(p.steps.pop(), wall, now)
			} else {
				break
			}
		}
		wait := time.Duration(-1)
		switch {
		case n >= maxBatch:
			wait = 0
		default:
			if len(p.steps) > 0 {
				wait = p.steps[0].due - now
			}
			if p.rate > 0 && (wait < 0 || p.nextArrival-now < wait) {
				wait = p.nextArrival - now
			}
		}
		backlog := len(p.out)
		if (backlog >= maxBacklog || p.skipped > 0) && wall.Sub(p.warned) > warnEvery {
			p.warned = wall
			p.log.Warn("simulation overloaded: the sink or the scheduler cannot keep up with the rate",
				"rate", p.rate, "backlog", backlog, "live", len(p.calls), "skipped_arrivals", p.skipped)
			p.skipped = 0
		}
		p.mu.Unlock()

		if backlog > 0 {
			signal(p.kick)
		}
		if backlog >= maxBacklog {
			select {
			case <-ctx.Done():
				return
			case <-p.drained:
			}
			continue
		}
		if wait == 0 {
			if ctx.Err() != nil {
				return
			}
			continue
		}
		if wait < 0 {
			wait = time.Hour
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-p.wake:
		}
	}
}

// send hands queued output to the sink, outside the lock, in the order it was queued.
func (p *PBX) send(ctx context.Context, sink hub.Sink) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.kick:
		}
		for {
			p.mu.Lock()
			batch := p.out
			p.out, p.spare = p.spare[:0], nil
			if p.out == nil && len(batch) > 0 {
				// Sized like the last batch, so the scheduler does not regrow it from
				// nothing while this one is being sent.
				p.out = make([]item, 0, cap(batch))
			}
			p.mu.Unlock()
			if len(batch) == 0 {
				break
			}
			for i := range batch {
				if ctx.Err() != nil {
					// What the sink did not get waits for the next Run.
					p.mu.Lock()
					p.out = append(slices.Clone(batch[i:]), p.out...)
					p.mu.Unlock()
					return
				}
				if s := batch[i].status; s != nil {
					sink.Status(*s)
				} else {
					sink.Update(batch[i].u)
				}
			}
			clear(batch)
			p.mu.Lock()
			p.spare = batch[:0]
			p.mu.Unlock()
			signal(p.drained)
		}
	}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// since is the scheduler's clock: monotonic, so a wall-clock jump never bunches steps.
func (p *PBX) since() time.Duration { return time.Since(p.epoch) }

func (p *PBX) interarrival(rate float64) time.Duration {
	return time.Duration(p.rng.ExpFloat64() / rate * float64(time.Second))
}

// dur is a random duration between lo and hi seconds of simulated time, in real time.
func (p *PBX) dur(lo, hi float64) time.Duration {
	s := lo + p.rng.Float64()*(hi-lo)
	return time.Duration(s / p.speed * float64(time.Second))
}

// ext finds an extension by number without a map: numbers are base+index.
func (p *PBX) ext(s string) (int32, bool) {
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1, false
	}
	i := n - p.base
	if i < 0 || i >= len(p.exts) || p.exts[i] != s {
		return -1, false
	}
	return int32(i), true
}

// callHeap orders the calls that have a step pending by when it is due; every call
// has at most one, so cancelling a call's script is removing one entry. Hand-written
// rather than container/heap to keep interface boxing off the hot path.
type callHeap []*simCall

func (h *callHeap) push(c *simCall) {
	c.hidx = int32(len(*h))
	*h = append(*h, c)
	h.up(int(c.hidx))
}

func (h *callHeap) pop() *simCall {
	c := (*h)[0]
	h.remove(0)
	return c
}

func (h *callHeap) remove(i int) {
	old := *h
	n := len(old) - 1
	c := old[i]
	if i != n {
		h.swap(i, n)
	}
	old[n] = nil
	*h = old[:n]
	if i != n {
		h.fix(i)
	}
	c.hidx = -1
}

func (h callHeap) fix(i int) {
	if !h.down(i) {
		h.up(i)
	}
}

func (h callHeap) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].hidx = int32(i)
	h[j].hidx = int32(j)
}

func (h callHeap) up(i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if h[parent].due <= h[i].due {
			return
		}
		h.swap(i, parent)
		i = parent
	}
}

// down reports whether the entry moved.
func (h callHeap) down(i int) bool {
	start := i
	n := len(h)
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && h[r].due < h[l].due {
			m = r
		}
		if h[i].due <= h[m].due {
			break
		}
		h.swap(i, m)
		i = m
	}
	return i > start
}
