package hub_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"callbridge/internal/hub"
)

// countedPBX is a PBX that counts its traffic.
type countedPBX struct{ silentPBX }

func (countedPBX) Counts() hub.ConnectorCounts {
	return hub.ConnectorCounts{Events: 12, Channels: 3, Evicted: 1, Disconnects: 2}
}

// TestConnectorMetrics: what connectors count of their PBX is exposed, labelled by PBX;
// connectors that count nothing add nothing.
func TestConnectorMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	st := openStore(t, filepath.Join(t.TempDir(), "cb.db"))
	defer st.Close()
	_, err := hub.New(hub.Config{Store: st, Metrics: hub.NewMetrics(reg),
		Connectors: []hub.Connector{countedPBX{silentPBX{"fs"}}, silentPBX{"other"}}})
	if err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "callbridge_pbx_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			v := m.GetCounter().GetValue()
			if m.GetGauge() != nil {
				v = m.GetGauge().GetValue()
			}
			got[mf.GetName()] += fmt.Sprintf("%s=%g ", m.GetLabel()[0].GetValue(), v)
		}
	}
	want := map[string]string{
		"callbridge_pbx_events_total":           "fs=12 ",
		"callbridge_pbx_channels":               "fs=3 ",
		"callbridge_pbx_channels_evicted_total": "fs=1 ",
		"callbridge_pbx_disconnects_total":      "fs=2 ",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("metrics %v, want %v", got, want)
	}
}
