package hub

import (
	"context"
	"slices"
	"sync"

	"callbridge/internal/call"
	"callbridge/internal/store"
)

// directory caches what the hot path asks of extensions: which PBX owns one, whether
// it is enabled for API control, its status, and the CRM users mapped to it.
type directory struct {
	mu    sync.RWMutex
	exts  map[string]map[string]*extInfo // tenant → number
	byExt map[string]map[string][]string // tenant → extension → CRM users
}

type extInfo struct {
	pbx        string
	apiEnabled bool
	status     string
	agent      string
}

func newDirectory() *directory {
	return &directory{exts: map[string]map[string]*extInfo{}, byExt: map[string]map[string][]string{}}
}

func (d *directory) load(ctx context.Context, st store.Store) error {
	exts, err := st.Extensions(ctx, "")
	if err != nil {
		return err
	}
	maps, err := st.Mappings(ctx, "")
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	old := d.exts
	d.exts = map[string]map[string]*extInfo{}
	for _, e := range exts {
		t := d.exts[e.Tenant]
		if t == nil {
			t = map[string]*extInfo{}
			d.exts[e.Tenant] = t
		}
		info := &extInfo{pbx: e.PBX, apiEnabled: e.APIEnabled, status: e.Status}
		if prev := old[e.Tenant][e.Number]; prev != nil {
			info.status, info.agent = prev.status, prev.agent
		}
		t[e.Number] = info
	}
	d.byExt = map[string]map[string][]string{}
	for _, m := range maps {
		t := d.byExt[m.Tenant]
		if t == nil {
			t = map[string][]string{}
			d.byExt[m.Tenant] = t
		}
		t[m.Extension] = append(t[m.Extension], m.CRMUser)
	}
	return nil
}

func (d *directory) ext(tenant, number string) (extInfo, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	e := d.exts[tenant][number]
	if e == nil {
		return extInfo{}, false
	}
	return *e, true
}

// setStatus records an extension's status and reports whether it changed (a status
// of an extension the directory does not know counts as a change).
func (d *directory) setStatus(tenant, number string, typ call.EventType, status string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.exts[tenant][number]
	if e == nil {
		return true
	}
	field := &e.status
	if typ == call.EventAgentStatus {
		field = &e.agent
	}
	if *field == status {
		return false
	}
	*field = status
	return true
}

// users returns the CRM users mapped to any of exts.
func (d *directory) users(tenant string, exts []string) []string {
	d.mu.RLock()
	defer d.mu.RUnlock()
	t := d.byExt[tenant]
	if len(t) == 0 {
		return nil
	}
	var out []string
	for _, e := range exts {
		for _, u := range t[e] {
			if !slices.Contains(out, u) {
				out = append(out, u)
			}
		}
	}
	return out
}

// extensionsOf returns the extensions mapped to a CRM user.
func (d *directory) extensionsOf(tenant, user string) []string {
	d.mu.RLock()
	defer d.mu.RUnlock()
	var out []string
	for ext, us := range d.byExt[tenant] {
		if slices.Contains(us, user) {
			out = append(out, ext)
		}
	}
	// Sorted: callers show the list, and a map's order would change from call to call.
	slices.Sort(out)
	return out
}

// endedCache keeps recently ended calls for the updates that follow an end (the final
// record), bounded in count so memory does not grow with history.
type endedCache struct {
	max   int
	calls map[string]*call.Call
	order []string
	head  int
}

func newEndedCache(max int) *endedCache {
	return &endedCache{max: max, calls: make(map[string]*call.Call, max), order: make([]string, 0, max)}
}

func (c *endedCache) get(key string) *call.Call { return c.calls[key] }

func (c *endedCache) put(key string, v *call.Call) {
	if _, ok := c.calls[key]; ok {
		c.calls[key] = v
		return
	}
	if len(c.order) < c.max {
		c.order = append(c.order, key)
	} else {
		delete(c.calls, c.order[c.head])
		c.order[c.head] = key
		c.head = (c.head + 1) % c.max
	}
	c.calls[key] = v
}
