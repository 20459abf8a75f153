package esl

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"callbridge/internal/wire"
)

// Default limits of a Reader.
const (
	// DefaultMaxLine is the longest header line (line end excluded) a Reader accepts.
	DefaultMaxLine = 16 << 10
	// DefaultMaxHeaders is the largest outer header block a Reader accepts.
	DefaultMaxHeaders = 64 << 10
	// DefaultMaxBody is the largest body a Reader accepts: api/response bodies (say
	// "show channels as json" on a busy switch) can be large.
	DefaultMaxBody = 8 << 20
)

// Sentinel errors of the Reader. They are wrapped with details: test them with
// errors.Is. All of them are final.
var (
	// ErrLineTooLong reports a header line longer than Limits.MaxLine.
	ErrLineTooLong = errors.New("esl: header line too long")
	// ErrHeadersTooLarge reports a header block larger than Limits.MaxHeaders.
	ErrHeadersTooLarge = errors.New("esl: header block too large")
	// ErrBodyTooLarge reports a Content-Length over Limits.MaxBody.
	ErrBodyTooLarge = errors.New("esl: body too large")
	// ErrMalformed reports bytes that do not frame as an ESL message: a header line
	// without a colon or with an invalid name, a bad Content-Length, a block without
	// Content-Type. A body longer than its Content-Length shows up this way at the
	// next message boundary.
	ErrMalformed = errors.New("esl: malformed message")
)

// Limits bounds what a Reader buffers; a zero field takes its default.
type Limits struct {
	MaxLine    int // longest header line, line end excluded (DefaultMaxLine)
	MaxHeaders int // largest header block, line ends included, blank line excluded (DefaultMaxHeaders)
	MaxBody    int // largest Content-Length (DefaultMaxBody)
}

// Reader states.
const (
	stIdle    = iota // between messages: blank lines are skipped
	stHeaders        // inside the header block
	stBody           // waiting for the body
)

// Reader reads ESL messages from a byte stream (the event socket, a recorded capture).
//
// Framing: a header block of "Key: Value" lines ends with an empty line; when it has a
// Content-Length, exactly that many bytes of body follow, and the next message starts
// right after them (text/event-json bodies are not followed by a newline). A line ends
// with "\n"; a "\r" before it is dropped. Blank lines between messages are skipped. Outer
// header names must be tokens (letters, digits, '-', '_', '.'), every line must have a
// colon, and a block must carry Content-Type: anything else is ErrMalformed, which is how
// a body longer than announced is caught.
//
// A text/event-plain body is itself a header block whose values are URL-encoded
// (%XX; '+' stays '+', as FreeSWITCH encodes '+' as %2B and never writes '+' for a
// space); the Reader decodes them. After its blank line, the event's own body (given by
// its Content-Length: BACKGROUND_JOB, API) is Event.Body. A text/event-json body is kept
// raw and decoded on the first Event.Get.
//
// Bounds: a header line over MaxLine, a header block over MaxHeaders or a Content-Length
// over MaxBody fail as soon as they are seen; the buffer never grows beyond about
// MaxHeaders+MaxLine+MaxBody plus slack. Limit and framing errors, and the end of the
// stream, are final: every later call returns the same error.
//
// A Reader is not safe for concurrent use.
type Reader struct {
	rd   io.Reader
	buf  []byte
	r, w int // buf[r:w] is read but not parsed

	state   uint8
	msg0    int // start of the message in progress
	line0   int // start of the header line being scanned
	hdrEnd  int // first byte after the header block's blank line
	bodyLen int

	maxLine, maxHeaders, maxBody int

	msg     Message
	ready   bool
	scratch []byte // decoded values of the current plain event

	rerr error // read error that came with data; returned once that data is parsed
	err  error // final error
}

// NewReader returns a Reader of rd with the default limits.
func NewReader(rd io.Reader) *Reader { return NewReaderLimits(rd, Limits{}) }

// NewReaderLimits returns a Reader of rd with the given limits.
func NewReaderLimits(rd io.Reader, lim Limits) *Reader {
	if lim.MaxLine <= 0 {
		lim.MaxLine = DefaultMaxLine
	}
	if lim.MaxHeaders <= 0 {
		lim.MaxHeaders = DefaultMaxHeaders
	}
	if lim.MaxBody <= 0 {
		lim.MaxBody = DefaultMaxBody
	}
	size := max(2*(lim.MaxHeaders+lim.MaxLine+2), 4096)
	return &Reader{
		rd:         rd,
		buf:        make([]byte, size),
		maxLine:    lim.MaxLine,
		maxHeaders: lim.MaxHeaders,
		maxBody:    lim.MaxBody,
		msg:        Message{headers: make([]Field, 0, 4)},
	}
}

// Next returns the next message. The Message (the same *Message every time) and all it
// holds alias the Reader's buffers and are overwritten by the following call: Clone it to
// keep it. It returns io.EOF at the end of the stream between messages and
// io.ErrUnexpectedEOF when the stream ends inside one. Any other read error is returned
// as is and the call may be retried: it resumes the message in progress.
func (r *Reader) Next() (*Message, error) {
	if r.err != nil {
		return nil, r.err
	}
	if r.ready {
		r.ready = false
		r.msg.reset()
	}
	for {
		done, err := r.parse()
		if err != nil {
			r.err = err
			return nil, err
		}
		if done {
			r.ready = true
			return &r.msg, nil
		}
		if err := r.fill(); err != nil {
			if err == io.EOF {
				if r.state == stIdle && r.r == r.w {
					err = io.EOF
				} else {
					err = io.ErrUnexpectedEOF
				}
				r.err = err
			}
			return nil, err
		}
	}
}

// parse advances through the buffered bytes; it reports true when a message is complete.
func (r *Reader) parse() (bool, error) {
	for {
		switch r.state {
		case stIdle:
			i := r.r
			for i < r.w && (r.buf[i] == '\n' || r.buf[i] == '\r' && i+1 < r.w && r.buf[i+1] == '\n') {
				if r.buf[i] == '\r' {
					i++
				}
				i++
			}
			r.r = i
			if i == r.w || r.buf[i] == '\r' && i+1 == r.w {
				return false, nil
			}
			r.msg0, r.line0 = i, i
			r.state = stHeaders
		case stHeaders:
			ok, err := r.scanHeaders()
			if err != nil || !ok {
				return false, err
			}
			if err := r.headers(); err != nil {
				return false, err
			}
			r.state = stBody
		default:
			end := r.hdrEnd + r.bodyLen
			if r.w < end {
				return false, nil
			}
			if r.bodyLen > 0 || r.hasLength() {
				r.msg.body = r.buf[r.hdrEnd:end:end]
			}
			r.r = end
			r.state = stIdle
			r.event()
			return true, nil
		}
	}
}

// scanHeaders looks for the blank line that ends the header block, checking the limits
// on the way. It reports true when the block is complete. When a line breaks both
// limits, the one crossed at the earlier byte wins, so the error does not depend on how
// the stream was split into reads.
func (r *Reader) scanHeaders() (bool, error) {
	buf := r.buf[:r.w]
	i := r.line0
	for {
		nl := bytes.IndexByte(buf[i:], '\n')
		if nl < 0 {
			end := len(buf)
			if end > i && buf[end-1] == '\r' {
				end--
			}
			r.line0 = i
			return false, r.limitErr(i, end)
		}
		e := i + nl
		ce := e
		if ce > i && buf[ce-1] == '\r' {
			ce--
		}
		if err := r.limitErr(i, ce); err != nil {
			return false, err
		}
		if ce == i {
			r.line0 = i
			r.hdrEnd = e + 1
			return true, nil
		}
		i = e + 1
		if i-r.msg0 > r.maxHeaders {
			return false, fmt.Errorf("%w: over %d bytes", ErrHeadersTooLarge, r.maxHeaders)
		}
	}
}

// limitErr checks the line whose content so far is buf[i:end].
func (r *Reader) limitErr(i, end int) error {
	lineX := -1 // where the line limit is crossed
	if end-i > r.maxLine {
		lineX = i + r.maxLine
	}
	hdrX := -1
	if end-r.msg0 > r.maxHeaders {
		hdrX = r.msg0 + r.maxHeaders
	}
	switch {
	case lineX >= 0 && (hdrX < 0 || lineX <= hdrX):
		return fmt.Errorf("%w: limit %d", ErrLineTooLong, r.maxLine)
	case hdrX >= 0:
		return fmt.Errorf("%w: over %d bytes", ErrHeadersTooLarge, r.maxHeaders)
	}
	return nil
}

// headers splits the complete header block buf[msg0:line0] into fields, validates it
// and takes Content-Type and Content-Length from it.
func (r *Reader) headers() error {
	buf := r.buf[:r.line0]
	fields := r.msg.headers[:0]
	for i := r.msg0; i < len(buf); {
		e := i + bytes.IndexByte(buf[i:], '\n')
		ce := e
		if buf[ce-1] == '\r' {
			ce--
		}
		c := bytes.IndexByte(buf[i:ce], ':')
		if c <= 0 || !isToken(buf[i:i+c]) {
			return fmt.Errorf("%w: bad header line %q", ErrMalformed, clip(buf[i:ce]))
		}
		v := i + c + 1
		for v < ce && (buf[v] == ' ' || buf[v] == '\t') {
			v++
		}
		fields = append(fields, Field{Key: buf[i : i+c : i+c], Value: buf[v:ce:ce]})
		i = e + 1
	}
	r.msg.headers = fields
	r.msg.ctype = first(fields, "Content-Type")
	if len(r.msg.ctype) == 0 {
		return fmt.Errorf("%w: no Content-Type", ErrMalformed)
	}
	r.bodyLen = 0
	if cl := first(fields, "Content-Length"); cl != nil {
		n, ok := parseLength(cl)
		if !ok {
			return fmt.Errorf("%w: bad Content-Length %q", ErrMalformed, clip(cl))
		}
		if n > r.maxBody {
			return fmt.Errorf("%w: %d bytes, limit %d", ErrBodyTooLarge, n, r.maxBody)
		}
		r.bodyLen = n
	}
	return nil
}

func (r *Reader) hasLength() bool { return first(r.msg.headers, "Content-Length") != nil }

// isToken reports whether b is a valid outer header name.
func isToken(b []byte) bool {
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// clip shortens b for an error message.
func clip(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

// event fills msg.ev for an event message.
func (r *Reader) event() {
	m := &r.msg
	switch string(m.ctype) {
	case TypeEventJSON:
		m.isEvent = true
		m.ev.json = m.body
		if m.ev.json == nil {
			m.ev.json = []byte{}
		}
	case TypeEventPlain:
		m.isEvent = true
		r.plain(m.body)
	}
}

// plain parses the body of a text/event-plain message: header lines with URL-encoded
// values up to a blank line, then the event's own body. It is the hot loop: a line
// costs two IndexByte calls and, for a value without '%', no copy. It accepts any
// content, so an odd event never breaks the stream: a line without a colon becomes a key
// with an empty value.
func (r *Reader) plain(body []byte) {
	if cap(r.scratch) < len(body) {
		r.scratch = make([]byte, 0, len(body)+len(body)/4)
	}
	scratch := r.scratch[:0]
	fields := r.msg.ev.fields[:0]
	i := 0
	for i < len(body) {
		nl := bytes.IndexByte(body[i:], '\n')
		e := len(body)
		if nl >= 0 {
			e = i + nl
		}
		ce := e
		if ce > i && body[ce-1] == '\r' {
			ce--
		}
		if ce == i {
			i = e + 1
			break
		}
		if len(fields) == cap(fields) {
			fields = append(fields, Field{})
		} else {
			fields = fields[:len(fields)+1]
		}
		f := &fields[len(fields)-1]
		line := body[i:ce]
		c := bytes.IndexByte(line, ':')
		if c < 0 {
			f.Key, f.Value = line, nil
		} else {
			v := c + 1
			if v < len(line) && line[v] == ' ' {
				v++
			}
			f.Key = line[:c:c]
			val := line[v:len(line):len(line)]
			if bytes.IndexByte(val, '%') >= 0 {
				s := len(scratch)
				scratch = unescape(scratch, val)
				val = scratch[s:len(scratch):len(scratch)]
			}
			f.Value = val
		}
		i = e + 1
	}
	r.scratch = scratch
	r.msg.ev.fields = fields
	if i < len(body) {
		rest := body[i:]
		if n, ok := parseLength(first(fields, "Content-Length")); ok && n <= len(rest) {
			rest = rest[:n]
		}
		r.msg.ev.body = rest
	}
}

// unescape appends v to dst with %XX sequences decoded; an invalid or cut sequence is
// kept as it is. '+' is kept.
func unescape(dst, v []byte) []byte {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '%' && i+2 < len(v) {
			if h, ok1 := unhex(v[i+1]); ok1 {
				if l, ok2 := unhex(v[i+2]); ok2 {
					dst = append(dst, h<<4|l)
					i += 2
					continue
				}
			}
		}
		dst = append(dst, c)
	}
	return dst
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// fill reads more bytes. It first makes room: it moves the bytes still needed to the
// front when the free tail runs short, and grows the buffer when it is full and the
// message in progress (its announced body included) needs more. The buffer grows by
// doubling as the bytes come, not to the announced length at once: a peer announcing
// 8 MiB and sending nothing costs nothing.
func (r *Reader) fill() error {
	if r.rerr != nil {
		err := r.rerr
		r.rerr = nil
		return err
	}
	base := r.r
	if r.state != stIdle {
		base = r.msg0
	}
	need := 0
	if r.state == stBody {
		need = r.hdrEnd + r.bodyLen - base
	}
	if base > 0 && (len(r.buf)-r.w < len(r.buf)/2 || base+need > len(r.buf)) {
		copy(r.buf, r.buf[base:r.w])
		r.rebase(base)
	}
	if r.w == len(r.buf) && need > len(r.buf) {
		// Room for the whole message and the next one's headers, at most.
		nb := make([]byte, min(2*len(r.buf), need+r.maxHeaders+r.maxLine))
		copy(nb, r.buf[:r.w])
		r.buf = nb
		r.rebase(0)
	}
	if r.w == len(r.buf) {
		// The limits make this unreachable; fail rather than spin.
		return fmt.Errorf("%w: buffer full", ErrHeadersTooLarge)
	}
	n, pending, err := wire.Fill(r.rd, r.buf[r.w:])
	r.w += n
	if pending != nil {
		r.rerr = pending
	}
	return err
}

// rebase shifts the offsets after the bytes from base moved to the front.
func (r *Reader) rebase(base int) {
	r.r -= base
	r.w -= base
	if r.state != stIdle {
		r.msg0 -= base
		r.line0 -= base
		if r.state == stBody {
			r.hdrEnd -= base
			// The parsed headers alias the old place: slice them again (a few lines;
			// they were valid the first time, so this cannot fail).
			_ = r.headers()
		}
	}
}
