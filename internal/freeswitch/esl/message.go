// Package esl is the FreeSWITCH Event Socket codec: a streaming, bounded reader of ESL
// messages (a header block, then a body of Content-Length bytes) that understands
// text/event-plain and text/event-json events, and a writer of commands. It knows
// nothing of connections or calls; internal/freeswitch builds those on it.
package esl

import (
	"encoding/json"
	"strconv"

	"callbridge/internal/wire"
)

// Content types FreeSWITCH sends on the event socket.
const (
	// TypeAuthRequest asks the client to send "auth <password>".
	TypeAuthRequest = "auth/request"
	// TypeCommandReply answers a command; its Reply-Text header holds "+OK …" or "-ERR …".
	TypeCommandReply = "command/reply"
	// TypeAPIResponse answers "api"; the body is the command's output.
	TypeAPIResponse = "api/response"
	// TypeEventPlain is an event whose body is a header block with URL-encoded values.
	TypeEventPlain = "text/event-plain"
	// TypeEventJSON is an event whose body is a JSON object.
	TypeEventJSON = "text/event-json"
	// TypeDisconnectNotice announces that FreeSWITCH closes the socket.
	TypeDisconnectNotice = "text/disconnect-notice"
)

// Field is one "Key: Value" header. Key and Value alias the message's buffer; in a
// plain event the Value is already URL-decoded.
type Field struct {
	Key, Value []byte
}

// Message is one ESL message. A Message returned by a Reader, its headers, body and
// event alias the Reader's buffers and are valid until the Reader's next call to Next;
// Clone it to keep it.
type Message struct {
	headers []Field
	ctype   []byte
	body    []byte
	isEvent bool
	ev      Event
}

// Headers returns the message's outer headers in wire order, repeated keys included.
func (m *Message) Headers() []Field { return m.headers }

// Header returns the value of the first outer header named key (ASCII
// case-insensitive), "" when absent.
func (m *Message) Header(key string) string { return string(first(m.headers, key)) }

// Values returns every value of the outer header key, in wire order.
func (m *Message) Values(key string) []string { return values(m.headers, key) }

// ContentType returns the message's Content-Type ("command/reply", "text/event-plain"…).
func (m *Message) ContentType() string { return string(m.ctype) }

// Is reports whether the message's Content-Type is ct, without allocating.
func (m *Message) Is(ct string) bool { return string(m.ctype) == ct }

// Body returns the message's body: Content-Length bytes, nil when there is none. For an
// event it is the raw event (encoded header block or JSON text).
func (m *Message) Body() []byte { return m.body }

// ReplyText returns the Reply-Text header of a command/reply ("+OK accepted").
func (m *Message) ReplyText() string { return m.Header("Reply-Text") }

// Event returns the event carried by a text/event-plain or text/event-json message,
// nil for any other content type.
func (m *Message) Event() *Event {
	if !m.isEvent {
		return nil
	}
	return &m.ev
}

// Clone returns a deep copy that does not alias the Reader's buffers.
func (m *Message) Clone() *Message {
	n := 0
	for _, f := range m.headers {
		n += len(f.Key) + len(f.Value)
	}
	for _, f := range m.ev.fields {
		n += len(f.Key) + len(f.Value)
	}
	n += len(m.ctype) + len(m.body) + len(m.ev.body) + len(m.ev.json)
	arena := make([]byte, 0, n)
	cp := func(b []byte) []byte {
		if b == nil {
			return nil
		}
		s := len(arena)
		arena = append(arena, b...)
		return arena[s:len(arena):len(arena)]
	}
	c := &Message{isEvent: m.isEvent}
	c.headers = make([]Field, len(m.headers))
	for i, f := range m.headers {
		c.headers[i] = Field{Key: cp(f.Key), Value: cp(f.Value)}
	}
	c.ctype = cp(m.ctype)
	c.body = cp(m.body)
	if len(m.ev.fields) > 0 {
		c.ev.fields = make([]Field, len(m.ev.fields))
		for i, f := range m.ev.fields {
			c.ev.fields[i] = Field{Key: cp(f.Key), Value: cp(f.Value)}
		}
	}
	c.ev.body = cp(m.ev.body)
	c.ev.json = cp(m.ev.json)
	return c
}

// reset empties the message for reuse, keeping its slices' capacity.
func (m *Message) reset() {
	m.headers = m.headers[:0]
	m.ctype, m.body = nil, nil
	m.isEvent = false
	m.ev.fields = m.ev.fields[:0]
	m.ev.body, m.ev.json = nil, nil
	m.ev.jmap, m.ev.jdone = nil, false
}

// Event is a FreeSWITCH event, from a text/event-plain or text/event-json message.
// Header lookups are ASCII case-insensitive, as in FreeSWITCH.
type Event struct {
	fields []Field // plain: headers with decoded values
	body   []byte  // inner body (plain: after the blank line; JSON: "_body")
	json   []byte  // JSON: the raw object
	jmap   map[string]json.RawMessage
	jdone  bool
}

// IsJSON reports whether the event came as text/event-json.
func (e *Event) IsJSON() bool { return e.json != nil }

// JSON returns the raw JSON object of a text/event-json event, nil for a plain event.
func (e *Event) JSON() []byte { return e.json }

// Fields returns the headers of a plain event in wire order with decoded values,
// repeated keys included; nil for a JSON event.
func (e *Event) Fields() []Field { return e.fields }

// Name returns the event's (first) Event-Name: "CHANNEL_CREATE", "CUSTOM"…
func (e *Event) Name() string { return e.Get("Event-Name") }

// Subclass returns the Event-Subclass of a CUSTOM event ("conference::maintenance").
func (e *Event) Subclass() string { return e.Get("Event-Subclass") }

// Get returns the (URL-decoded) value of the event's first header named key, "" when
// absent. A JSON event is decoded on the first call; if its JSON is invalid, Get
// returns "" for every key.
func (e *Event) Get(key string) string {
	if e.json == nil {
		return string(first(e.fields, key))
	}
	raw, ok := e.jsonRaw(key)
	if !ok {
		return ""
	}
	vs := jsonStrings(raw)
	if len(vs) == 0 {
		return ""
	}
	return vs[0]
}

// GetBytes is Get without the copy for a plain event: the bytes alias the message.
// For a JSON event it returns Get's answer as bytes (nil when absent).
func (e *Event) GetBytes(key string) []byte {
	if e.json == nil {
		return first(e.fields, key)
	}
	if _, ok := e.jsonRaw(key); !ok {
		return nil
	}
	return []byte(e.Get(key))
}

// Values returns every value of the header key, in order. Repeated headers of a JSON
// event come as a JSON array.
func (e *Event) Values(key string) []string {
	if e.json == nil {
		return values(e.fields, key)
	}
	raw, ok := e.jsonRaw(key)
	if !ok {
		return nil
	}
	return jsonStrings(raw)
}

// Body returns the event's own body (the output of a BACKGROUND_JOB or API event, given
// by the event's Content-Length), nil when it has none.
func (e *Event) Body() []byte {
	if e.json != nil && e.body == nil {
		if raw, ok := e.jsonRaw("_body"); ok {
			if vs := jsonStrings(raw); len(vs) > 0 {
				e.body = []byte(vs[0])
			}
		}
	}
	return e.body
}

// jsonRaw decodes the JSON object on first use and returns the raw value of key, exact
// match first, then ASCII case-insensitive.
func (e *Event) jsonRaw(key string) (json.RawMessage, bool) {
	if !e.jdone {
		e.jdone = true
		var m map[string]json.RawMessage
		if json.Unmarshal(e.json, &m) == nil {
			e.jmap = m
		}
	}
	if raw, ok := e.jmap[key]; ok {
		return raw, true
	}
	for k, raw := range e.jmap {
		if wire.EqualFold([]byte(k), key) {
			return raw, true
		}
	}
	return nil, false
}

// jsonStrings renders a JSON value as strings: a string as itself, an array element by
// element, anything else as its JSON text.
func jsonStrings(raw json.RawMessage) []string {
	if len(raw) == 0 {
		return nil
	}
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return []string{s}
		}
	case '[':
		var arr []json.RawMessage
		if json.Unmarshal(raw, &arr) == nil {
			out := make([]string, 0, len(arr))
			for _, a := range arr {
				out = append(out, jsonStrings(a)...)
			}
			return out
		}
	}
	return []string{string(raw)}
}

func first(fs []Field, key string) []byte {
	for i := range fs {
		if wire.EqualFold(fs[i].Key, key) {
			return fs[i].Value
		}
	}
	return nil
}

func values(fs []Field, key string) []string {
	var out []string
	for i := range fs {
		if wire.EqualFold(fs[i].Key, key) {
			out = append(out, string(fs[i].Value))
		}
	}
	return out
}

// parseLength parses a Content-Length value: decimal digits only.
func parseLength(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 10 {
		return 0, false
	}
	n, err := strconv.Atoi(string(b))
	if err != nil || n < 0 {
		return 0, false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	return n, true
}
