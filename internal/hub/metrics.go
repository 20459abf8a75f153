package hub

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the hub's Prometheus instruments.
type Metrics struct {
	applied       prometheus.Counter
	rejected      *prometheus.CounterVec
	dropped       prometheus.Counter
	lost          prometheus.Counter
	events        prometheus.Counter
	commitErrors  prometheus.Counter
	commitSeconds prometheus.Histogram
	batchEvents   prometheus.Histogram
	liveCalls     prometheus.Gauge
	controls      *prometheus.CounterVec
	rawDropped    prometheus.Counter
	// reg is where the hub registers the per-PBX collector once it knows its
	// connectors.
	reg prometheus.Registerer
}

// NewMetrics creates the hub's instruments and registers them with reg (nil: not
// registered, for tests and benchmarks).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		applied: prometheus.NewCounter(prometheus.CounterOpts{Name: "callbridge_updates_applied_total", Help: "Call updates applied to the state machine."}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "callbridge_updates_rejected_total",
			Help: "Call updates the state machine refused (duplicate, after the end, impossible), by reason."}, []string{"reason"}),
		dropped:      prometheus.NewCounter(prometheus.CounterOpts{Name: "callbridge_updates_dropped_total", Help: "Updates handed to a stopped hub."}),
		lost:         prometheus.NewCounter(prometheus.CounterOpts{Name: "callbridge_calls_lost_total", Help: "Calls ended with cause lost because the PBX no longer had them."}),
		events:       prometheus.NewCounter(prometheus.CounterOpts{Name: "callbridge_events_committed_total", Help: "Events committed to the log."}),
		commitErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "callbridge_commit_errors_total", Help: "Failed commits (retried)."}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "callbridge_commit_seconds", Help: "Duration of one group commit.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		batchEvents: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "callbridge_commit_batch_events", Help: "Events per group commit.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 14)}),
		liveCalls: prometheus.NewGauge(prometheus.GaugeOpts{Name: "callbridge_live_calls", Help: "Calls in progress."}),
		controls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "callbridge_control_commands_total",
			Help: "Control commands routed to connectors, by action and result."}, []string{"action", "result"}),
		rawDropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "callbridge_raw_events_dropped_total",
			Help: "Raw PBX events (pbx.raw) not delivered to a listener that did not keep up."}),
	}
	m.reg = reg
	if reg != nil {
		reg.MustRegister(m.applied, m.rejected, m.dropped, m.lost, m.events, m.commitErrors, m.commitSeconds, m.batchEvents, m.liveCalls, m.controls, m.rawDropped)
	}
	return m
}

// Counted is implemented by connectors that count their PBX traffic; the hub exposes
// the counts as metrics labelled by PBX id.
type Counted interface {
	Counts() ConnectorCounts
}

// ConnectorCounts is what a connector has seen of its PBX.
type ConnectorCounts struct {
	// Events is every PBX event read; Channels the channels tracked now.
	Events   uint64
	Channels int
	// Evicted counts channels dropped because the tracking cap was reached: only a
	// PBX that never reports hang-ups, or hostile input, gets there.
	Evicted uint64
	// Disconnects counts sessions that ended (the PBX, the network, or bad input).
	Disconnects uint64
}

var (
	descPBXEvents = prometheus.NewDesc("callbridge_pbx_events_total", "PBX events read, by PBX.", []string{"pbx"}, nil)
	descPBXChans  = prometheus.NewDesc("callbridge_pbx_channels", "PBX channels tracked now, by PBX.", []string{"pbx"}, nil)
	descPBXEvict  = prometheus.NewDesc("callbridge_pbx_channels_evicted_total",
		"PBX channels dropped at the tracking cap, by PBX (a PBX that never reports hang-ups, or hostile input).", []string{"pbx"}, nil)
	descPBXDisc = prometheus.NewDesc("callbridge_pbx_disconnects_total", "PBX sessions that ended, by PBX.", []string{"pbx"}, nil)
)

// pbxCollector reads the counts of the connectors that keep them, at scrape time.
type pbxCollector struct{ conns []Counted }

func (p pbxCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descPBXEvents
	ch <- descPBXChans
	ch <- descPBXEvict
	ch <- descPBXDisc
}

func (p pbxCollector) Collect(ch chan<- prometheus.Metric) {
	for _, c := range p.conns {
		n := c.Counts()
		id := c.(Connector).ID()
		ch <- prometheus.MustNewConstMetric(descPBXEvents, prometheus.CounterValue, float64(n.Events), id)
		ch <- prometheus.MustNewConstMetric(descPBXChans, prometheus.GaugeValue, float64(n.Channels), id)
		ch <- prometheus.MustNewConstMetric(descPBXEvict, prometheus.CounterValue, float64(n.Evicted), id)
		ch <- prometheus.MustNewConstMetric(descPBXDisc, prometheus.CounterValue, float64(n.Disconnects), id)
	}
}

// registerConnectors exposes the counts of the connectors that keep them.
func (m *Metrics) registerConnectors(conns []Connector) error {
	if m.reg == nil {
		return nil
	}
	var pc pbxCollector
	for _, c := range conns {
		if cc, ok := c.(Counted); ok {
			pc.conns = append(pc.conns, cc)
		}
	}
	if len(pc.conns) == 0 {
		return nil
	}
	return m.reg.Register(pc)
}
