package hub

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"
)

// Tester is implemented by connectors that can check their PBX on request (log in,
// ask something, log out) without disturbing the running connection: ELMA365's
// VoipTestConnection.
type Tester interface {
	Test(ctx context.Context) error
}

// Capable is implemented by connectors that can do only some control actions: the
// actions a call allows (call.Action*) are narrowed to these.
type Capable interface {
	Capabilities() []string
}

// Kinded is implemented by connectors that say what kind of PBX they speak to.
type Kinded interface {
	Kind() string
}

// PBXStatus is one PBX connection as the hub sees it.
type PBXStatus struct {
	ID     string `json:"id"`
	Kind   string `json:"kind,omitempty"`
	Tenant string `json:"-"`
	// Connected is true while the link is up.
	Connected bool `json:"connected"`
	// Since is when the link last changed state (zero: never connected).
	Since time.Time `json:"since,omitzero"`
	// LastError is why the link last went down.
	LastError string `json:"last_error,omitempty"`
	// LiveCalls counts the PBX's calls in progress.
	LiveCalls int `json:"live_calls"`
}

// pbxRegistry tracks link state per PBX; written by the applier, read by the API.
type pbxRegistry struct {
	mu sync.RWMutex
	m  map[string]*PBXStatus
}

func (r *pbxRegistry) set(id string, fn func(*PBXStatus)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := r.m[id]; s != nil {
		fn(s)
	}
}

// PBXs lists the PBX connections of a tenant, by id.
func (h *Hub) PBXs(tenant string) []PBXStatus {
	h.pbx.mu.RLock()
	defer h.pbx.mu.RUnlock()
	var out []PBXStatus
	for _, s := range h.pbx.m {
		if s.Tenant == tenant {
			out = append(out, *s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// TestPBX checks a tenant's PBX connection on request.
func (h *Hub) TestPBX(ctx context.Context, tenant, id string) error {
	conn, ok := h.conns[id]
	if !ok || h.tenantOf(id) != tenant {
		return fmt.Errorf("hub: pbx %q: %w", id, ErrNotFound)
	}
	t, ok := conn.(Tester)
	if !ok {
		return fmt.Errorf("hub: pbx %q cannot be tested: %w", id, ErrUnsupported)
	}
	if err := t.Test(ctx); err != nil {
		return fmt.Errorf("hub: pbx %q: %w", id, err)
	}
	return nil
}
