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
	if reg != nil {
		reg.MustRegister(m.applied, m.rejected, m.dropped, m.lost, m.events, m.commitErrors, m.commitSeconds, m.batchEvents, m.liveCalls, m.controls, m.rawDropped)
	}
	return m
}
