package ami

import (
	"errors"
	"fmt"
	"io"
)

// ErrInvalidField is returned, wrapped with the offending key, for a packet the Writer
// refuses to send: an empty key, a key with a colon or surrounding blanks, a key or
// value with CR or LF, or a packet a Reader would frame differently. Values are never
// quoted in the error, as they may be secrets.
var ErrInvalidField = errors.New("ami: invalid field")

// Writer writes actions (or any packet) to a connection, one Write per packet so that a
// packet never goes out in pieces of separate calls.
//
// Everything it accepts reads back field for field through a Reader; what it cannot
// write faithfully it refuses before writing anything: a CR or LF in a key or value
// would let a caller-supplied value (a caller ID, a CRM note) inject fields or whole
// actions into the stream.
//
// A Writer is not safe for concurrent use, by design: one goroutine owns a connection's
// writes and orders them.
type Writer struct {
	w   io.Writer
	buf []byte
}

// NewWriter returns a Writer to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w, buf: make([]byte, 0, 512)} }

// WriteAction writes "Action: name", "ActionID: actionID" (left out when empty) and the
// key, value pairs of kv in order (a key may repeat, as Variable does), then the blank
// line that ends the packet.
func (w *Writer) WriteAction(name, actionID string, kv ...string) error {
	if len(kv)%2 != 0 {
		return fmt.Errorf("%w: odd number of key, value arguments (%d)", ErrInvalidField, len(kv))
	}
	if err := checkField("Action", name); err != nil {
		return err
	}
	if name == "" {
		return fmt.Errorf("%w: empty action name", ErrInvalidField)
	}
	if err := checkField("ActionID", actionID); err != nil {
		return err
	}
	for i := 0; i < len(kv); i += 2 {
		if err := checkField(kv[i], kv[i+1]); err != nil {
			return err
		}
	}
	b := w.buf[:0]
	b = appendField(b, "Action", name)
	if actionID != "" {
		b = appendField(b, "ActionID", actionID)
	}
	for i := 0; i < len(kv); i += 2 {
		b = appendField(b, kv[i], kv[i+1])
	}
	b = append(b, '\r', '\n')
	return w.flush(b)
}

// WritePacket writes p's fields in order, then the blank line that ends the packet.
// p.Output is not written: only a server sends command output.
func (w *Writer) WritePacket(p *Packet) error {
	if len(p.fields) == 0 {
		return fmt.Errorf("%w: empty packet", ErrInvalidField)
	}
	if isFollows(p.fields[0]) {
		// A Reader would take the following fields for command output.
		return fmt.Errorf("%w: a packet cannot start with Response: Follows", ErrInvalidField)
	}
	for _, f := range p.fields {
		if err := checkField(f.Key, f.Value); err != nil {
			return err
		}
	}
	b := w.buf[:0]
	for _, f := range p.fields {
		b = appendField(b, f.Key, f.Value)
	}
	b = append(b, '\r', '\n')
	return w.flush(b)
}

func (w *Writer) flush(b []byte) error {
	if cap(b) <= 64<<10 {
		w.buf = b[:0] // keep a grown buffer, but not a huge one
	}
	n, err := w.w.Write(b)
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	return err
}

func appendField[T string | []byte](b []byte, k, v T) []byte {
	b = append(b, k...)
	b = append(b, ':', ' ')
	b = append(b, v...)
	return append(b, '\r', '\n')
}

// checkField refuses what would not read back as the same field.
func checkField[T string | []byte](k, v T) error {
	if len(k) == 0 {
		return fmt.Errorf("%w: empty key", ErrInvalidField)
	}
	if isBlank(k[0]) || isBlank(k[len(k)-1]) {
		return fmt.Errorf("%w: key %q has leading or trailing blanks", ErrInvalidField, k)
	}
	for i := 0; i < len(k); i++ {
		switch k[i] {
		case '\r', '\n':
			return fmt.Errorf("%w: key %q contains CR or LF", ErrInvalidField, k)
		case ':':
			return fmt.Errorf("%w: key %q contains a colon", ErrInvalidField, k)
		}
	}
	for i := 0; i < len(v); i++ {
		if v[i] == '\r' || v[i] == '\n' {
			return fmt.Errorf("%w: value of %q contains CR or LF", ErrInvalidField, k)
		}
	}
	return nil
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' }
