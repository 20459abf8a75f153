// Package intern shares the strings a correlator keeps over and over (contexts,
// extensions, hang-up causes, dial statuses), so keeping them costs no allocation.
package intern

// Pool is a bounded string pool: once full it hands out fresh strings. Phone numbers
// long enough to be callers are never pooled (one of many callers, not worth
// keeping), nor are strings over 32 bytes. It is not safe for concurrent use.
type Pool struct {
	m   map[string]string
	max int
}

// New returns a pool of at most max strings.
func New(max int) *Pool { return &Pool{m: make(map[string]string, 256), max: max} }

// Bytes returns b as a string, the pooled one when there is one.
func (p *Pool) Bytes(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if s, ok := p.m[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(p.m) < p.max && len(b) <= 32 && !isLongNumber(b) {
		p.m[s] = s
	}
	return s
}

// Len is the number of pooled strings.
func (p *Pool) Len() int { return len(p.m) }

// isLongNumber reports a phone number too long to be an extension.
func isLongNumber(b []byte) bool {
	if len(b) < 7 {
		return false
	}
	for _, c := range b {
		if (c < '0' || c > '9') && c != '+' {
			return false
		}
	}
	return true
}
