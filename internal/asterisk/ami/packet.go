// Package ami is the Asterisk Manager Interface codec: a streaming, bounded reader of
// "Key: Value" packets and a writer of actions. It knows nothing of connections or
// calls; internal/asterisk builds those on it.
package ami

import (
	"strings"

	"callbridge/internal/wire"
)

// Field is one "Key: Value" line of a packet. Key and Value alias the packet's buffer.
type Field struct {
	Key   []byte
	Value []byte
}

// Packet is one AMI message: an event, a response or an action. Its fields alias one
// buffer, so a Packet is cheap to produce; a Packet returned by a Reader is valid until
// the Reader's next call unless it is Cloned.
type Packet struct {
	buf    []byte
	fields []Field
	// Output holds the body of a "Response: Follows" command reply (the lines before
	// "--END COMMAND--"), empty otherwise.
	Output []byte
}

// Fields returns the packet's fields in wire order, repeated keys included.
func (p *Packet) Fields() []Field { return p.fields }

// Len is the number of fields.
func (p *Packet) Len() int { return len(p.fields) }

// GetBytes returns the value of the first field named key (ASCII case-insensitive,
// as AMI keys are), or nil. The bytes alias the packet.
func (p *Packet) GetBytes(key string) []byte {
	for i := range p.fields {
		if wire.EqualFold(p.fields[i].Key, key) {
			return p.fields[i].Value
		}
	}
	return nil
}

// Get returns the value of the first field named key as a string, "" when absent.
func (p *Packet) Get(key string) string { return string(p.GetBytes(key)) }

// Has reports whether the packet has a field named key.
func (p *Packet) Has(key string) bool {
	for i := range p.fields {
		if wire.EqualFold(p.fields[i].Key, key) {
			return true
		}
	}
	return false
}

// Is reports whether the first field named key has value val (case-sensitive value).
func (p *Packet) Is(key, val string) bool { return string(p.GetBytes(key)) == val }

// Values returns every value of key, in order (ChanVariable, Variable repeat).
func (p *Packet) Values(key string) []string {
	var out []string
	for i := range p.fields {
		if wire.EqualFold(p.fields[i].Key, key) {
			out = append(out, string(p.fields[i].Value))
		}
	}
	return out
}

// Event is the packet's event name ("" for responses and actions).
func (p *Packet) Event() string { return p.Get("Event") }

// Clone returns a copy that does not alias the reader's buffers.
func (p *Packet) Clone() *Packet {
	cp := &Packet{buf: append([]byte(nil), p.buf...), fields: make([]Field, len(p.fields))}
	for i, f := range p.fields {
		cp.fields[i] = Field{Key: rebase(cp.buf, p.buf, f.Key), Value: rebase(cp.buf, p.buf, f.Value)}
	}
	if p.Output != nil {
		// rebase keeps an empty Output non-nil: a Follows reply with no output stays one.
		cp.Output = rebase(cp.buf, p.buf, p.Output)
	}
	return cp
}

// rebase maps a sub-slice of old onto the same offsets in nu; a slice that does not
// alias old (built by hand) is copied.
func rebase(nu, old, s []byte) []byte {
	if len(s) == 0 {
		return s[:0:0]
	}
	if cap(old) > 0 && len(old) > 0 {
		off := cap(old) - cap(s)
		if off >= 0 && off+len(s) <= len(old) && &old[off] == &s[0] {
			return nu[off : off+len(s) : off+len(s)]
		}
	}
	return append([]byte(nil), s...)
}

// String renders the packet as it would be sent (CRLF line ends, blank line after).
func (p *Packet) String() string {
	var sb strings.Builder
	for _, f := range p.fields {
		sb.Write(f.Key)
		sb.WriteString(": ")
		sb.Write(f.Value)
		sb.WriteString("\r\n")
	}
	sb.WriteString("\r\n")
	return sb.String()
}

// NewPacket builds a packet from key, value pairs (tests, fake servers, snapshots).
func NewPacket(kv ...string) *Packet {
	p := &Packet{}
	for i := 0; i+1 < len(kv); i += 2 {
		p.fields = append(p.fields, Field{Key: []byte(kv[i]), Value: []byte(kv[i+1])})
	}
	return p
}
