package ami

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"callbridge/internal/wire"
)

// Default limits of a Reader. Asterisk's own packets stay under 3 KiB (the recorded
// fixtures peak at 2.7 KiB, their longest line at 195 bytes), so these leave room for long
// channel variables and for Command output while still bounding a hostile peer.
const (
	// DefaultMaxLine is the longest line a Reader accepts unless told otherwise.
	DefaultMaxLine = 16 << 10
	// DefaultMaxPacket is the largest packet a Reader accepts unless told otherwise.
	DefaultMaxPacket = 64 << 10
)

// Sentinel errors of the Reader. Limit errors are wrapped with details; test them with
// errors.Is.
var (
	// ErrLineTooLong reports a line (line end excluded) longer than Limits.MaxLine.
	ErrLineTooLong = errors.New("ami: line too long")
	// ErrPacketTooLarge reports a packet whose lines exceed Limits.MaxPacket bytes.
	ErrPacketTooLarge = errors.New("ami: packet too large")
	// ErrNoBanner is ReadBanner's answer when the first line is not a greeting.
	ErrNoBanner = errors.New("ami: stream does not start with a greeting banner")
)

// Limits bounds what a Reader buffers; a zero field takes its default.
type Limits struct {
	MaxLine   int // longest line, line end excluded (DefaultMaxLine)
	MaxPacket int // largest packet: its lines with their line ends, the closing blank line excluded (DefaultMaxPacket)
}

// endCommand closes the body of a "Response: Follows" reply.
const endCommand = "--END COMMAND--"

// Reader states between two lines.
const (
	stIdle       = iota // between packets: blank lines are skipped
	stHeaders           // inside a packet, reading fields
	stFollowsHdr        // inside a "Response: Follows" reply, before its output
	stOutput            // inside the output of a "Response: Follows" reply
)

// Reader reads AMI packets from a byte stream (a TCP connection, a recorded capture).
//
// Framing, decided on the wire as Asterisk 22 writes it and tolerant of the rest:
//   - A line ends with "\n"; one "\r" before it is dropped, so CRLF, bare LF and a mix of
//     both read the same. A "\r" elsewhere is data.
//   - A packet ends with an empty line; runs of empty lines between packets are skipped.
//   - A field is split at the first ':' (values keep theirs: "AccountCode: a:b:c"). The
//     key is trimmed of spaces and tabs. One space after the colon is dropped, none is
//     accepted; further leading spaces belong to the value, because Asterisk writes
//     values verbatim (the SIP fixtures carry RTCP statistics in VarSet values that begin
//     with spaces). Trailing spaces are kept.
//   - A line with no colon becomes a field whose Key is the trimmed line and whose Value
//     is empty, so nothing on the wire is lost. Key is empty only for a line that starts
//     with ':' or holds only blanks; no line is ever rejected for its content.
//   - Repeated keys stay in wire order (ChanVariable, Variable, Output).
//   - The greeting "Asterisk Call Manager/11.0.0" is the first line of a connection and
//     is followed by no blank line: when the stream's first line has no colon it is taken
//     as the banner (see ReadBanner and Banner), never as a field.
//   - A packet whose first field is "Response: Follows" (the Command action up to
//     Asterisk 13): after its Privilege and ActionID fields, every line up to one
//     ending in "--END COMMAND--" is the command's output, blank lines included, and
//     goes to Packet.Output verbatim; the packet ends with that line. Asterisk 14 and
//     later (22 included) answer Command with "Response: Success" and one "Output:"
//     field per line instead; those are ordinary repeated fields.
//
// Bounds: a line longer than MaxLine fails with ErrLineTooLong as soon as the excess is
// buffered, whether or not the line ever ends, and a packet larger than MaxPacket with
// ErrPacketTooLarge, so a Reader never holds more than about 2×(MaxPacket+MaxLine)
// bytes. Either error, like any malformed end of stream, is final: every later call
// returns it, because the stream can no longer be framed and the connection must be
// dropped.
//
// A Reader is not safe for concurrent use: one goroutine reads a connection.
type Reader struct {
	rd   io.Reader
	buf  []byte // buf[r:w] is read but not yet parsed; a packet in progress starts at pkt0
	r, w int
	pkt0 int // first byte of the packet in progress
	out0 int // first byte of the Follows output in progress, -1 before it

	state   uint8
	started bool // the stream's first line has been seen (banner decided)
	ready   bool // pkt holds a packet returned by the last Next

	maxLine, maxPacket int

	pkt    Packet
	banner string
	rerr   error // read error that came with data; returned once that data is parsed
	err    error // final error
}

// NewReader returns a Reader of rd with the default limits.
func NewReader(rd io.Reader) *Reader { return NewReaderLimits(rd, Limits{}) }

// NewReaderLimits returns a Reader of rd with the given limits.
func NewReaderLimits(rd io.Reader, lim Limits) *Reader {
	if lim.MaxLine <= 0 {
		lim.MaxLine = DefaultMaxLine
	}
	if lim.MaxPacket <= 0 {
		lim.MaxPacket = DefaultMaxPacket
	}
	// A complete packet plus a line in progress that has just overrun MaxLine must fit
	// without compaction; doubling keeps reads large and compactions rare.
	size := 2 * (lim.MaxPacket + lim.MaxLine + 2)
	if size < 4096 {
		size = 4096
	}
	return &Reader{
		rd:        rd,
		buf:       make([]byte, size),
		out0:      -1,
		maxLine:   lim.MaxLine,
		maxPacket: lim.MaxPacket,
		pkt:       Packet{fields: make([]Field, 0, 32)},
	}
}

// Banner returns the greeting line read at the start of the stream ("Asterisk Call
// Manager/11.0.0", line end excluded), or "" when there was none or it is not read yet.
func (r *Reader) Banner() string { return r.banner }

// ReadBanner reads the greeting line that Asterisk sends on connect. A client must call
// it before sending Login: Asterisk sends nothing more until the client speaks, so a
// Next at that point would wait for ever. When the first line is a field rather than a
// greeting (a capture taken after login), it returns ErrNoBanner and leaves the line for
// Next. Once the first line is decided it returns the result again without reading.
func (r *Reader) ReadBanner() (string, error) {
	for !r.started {
		if r.err != nil {
			return "", r.err
		}
		if nl := bytes.IndexByte(r.buf[r.r:r.w], '\n'); nl >= 0 {
			if err := r.firstLine(r.r + nl); err != nil {
				r.err = err
				return "", err
			}
			break
		}
		if err := r.checkPartial(); err != nil {
			r.err = err
			return "", err
		}
		if err := r.fill(); err != nil {
			if err == io.EOF {
				err = r.eof()
			}
			return "", err
		}
	}
	if r.banner == "" {
		return "", ErrNoBanner
	}
	return r.banner, nil
}

// firstLine decides whether the stream's first line, ending with the '\n' at e, is a
// banner, and consumes it if so.
func (r *Reader) firstLine(e int) error {
	r.started = true
	ce := e
	if ce > r.r && r.buf[ce-1] == '\r' {
		ce--
	}
	if ce-r.r > r.maxLine {
		return r.lineErr(ce - r.r)
	}
	line := r.buf[r.r:ce]
	if len(line) > 0 && bytes.IndexByte(line, ':') < 0 {
		r.banner = string(line)
		r.r = e + 1
	}
	return nil
}

// Next returns the next packet. The Packet (the same *Packet every time), its fields
// and its Output alias the Reader's buffer and are overwritten by the following call to
// Next: Clone a packet to keep it, and do not modify or append to its slices. It returns io.EOF at the end of the stream between packets and
// io.ErrUnexpectedEOF when the stream ends inside one. A read error is returned as is;
// unless it is io.EOF the call may be retried (after a deadline, say) and resumes the
// packet in progress.
func (r *Reader) Next() (*Packet, error) {
	if r.err != nil {
		return nil, r.err
	}
	if r.ready {
		r.ready = false
		r.pkt.fields = r.pkt.fields[:0]
		r.pkt.Output = nil
		r.pkt.buf = nil
	}
	for {
		done, err := r.parse()
		if err != nil {
			r.err = err
			return nil, err
		}
		if done {
			r.ready = true
			return &r.pkt, nil
		}
		if err := r.fill(); err != nil {
			if err == io.EOF {
				err = r.eof()
			}
			return nil, err
		}
	}
}

// eof turns the end of the stream into io.EOF at a packet boundary and
// io.ErrUnexpectedEOF elsewhere, and makes it final.
func (r *Reader) eof() error {
	if r.state == stIdle && r.r == r.w {
		r.err = io.EOF
	} else {
		r.err = io.ErrUnexpectedEOF
	}
	return r.err
}

// parse consumes the complete lines in the buffer. It reports true when they end a
// packet, which is then in r.pkt; false means more bytes are needed.
func (r *Reader) parse() (bool, error) {
	if !r.started {
		nl := bytes.IndexByte(r.buf[r.r:r.w], '\n')
		if nl < 0 {
			return false, r.checkPartial()
		}
		if err := r.firstLine(r.r + nl); err != nil {
			return false, err
		}
	}
	for {
		var done, more bool
		var err error
		switch r.state {
		case stIdle:
			more = r.skipBlank()
		case stHeaders:
			done, more, err = r.headers()
		default:
			done, more, err = r.follows()
		}
		if err != nil || done {
			return done, err
		}
		if more {
			return false, r.checkPartial()
		}
	}
}

// skipBlank consumes the blank lines before a packet and starts the packet at the first
// other line. It reports true when it needs more bytes.
func (r *Reader) skipBlank() bool {
	buf := r.buf[:r.w]
	i := r.r
	for i < len(buf) {
		switch buf[i] {
		case '\n':
			i++
			continue
		case '\r':
			if i+1 < len(buf) && buf[i+1] == '\n' {
				i += 2
				continue
			}
			if i+1 == len(buf) {
				r.r = i
				return true // "\r" then maybe "\n"
			}
		}
		r.r = i
		r.pkt0 = i
		r.state = stHeaders
		return false
	}
	r.r = i
	return true
}

// headers reads the field lines of a packet up to its blank line. It is the hot loop
// (20 lines a packet, 8 million in the load trace): the common line costs two
// bytes.IndexByte and no other call; odd keys and the Follows check take the slow path.
// It reports done when the packet is complete, more when it needs more bytes.
func (r *Reader) headers() (done, more bool, err error) {
	buf := r.buf[:r.w]
	fields := r.pkt.fields
	i := r.r
	maxLine := r.maxLine
	pktEnd := r.pkt0 + r.maxPacket // a packet's lines end before this
	for {
		nl := bytes.IndexByte(buf[i:], '\n')
		if nl < 0 {
			more = true
			break
		}
		e := i + nl // the line's '\n'
		ce := e     // its content's end
		if nl > 0 && buf[e-1] == '\r' {
			ce--
		}
		if ce-i > maxLine {
			err = r.lineErr(ce - i)
			break
		}
		if ce == i {
			r.r = e + 1
			r.pkt.fields = fields
			r.finish(i)
			return true, false, nil
		}
		if e >= pktEnd {
			err = r.packetErr()
			break
		}
		// Filling the new element in place, rather than appending a composite literal,
		// spares a copy through the stack that stalls store forwarding: a third of the
		// Reader's time went there.
		if len(fields) == cap(fields) {
			fields = append(fields, Field{})
		} else {
			fields = fields[:len(fields)+1]
		}
		f := &fields[len(fields)-1]
		if c := bytes.IndexByte(buf[i:ce], ':'); c > 0 && buf[i] > ' ' && buf[i+c-1] > ' ' {
			v := i + c + 1
			if v < ce && buf[v] == ' ' {
				v++
			}
			f.Key = buf[i : i+c]
			f.Value = buf[v:ce]
		} else {
			f.Key, f.Value = splitField(buf, i, ce)
		}
		i = e + 1
		if len(fields) == 1 && isFollows(fields[0]) {
			r.state = stFollowsHdr
			break
		}
	}
	r.r = i
	r.pkt.fields = fields
	return false, more, err
}

// splitField splits the line buf[i:ce] into key and value in every case: with or without
// a colon, with blanks around the key.
func splitField(buf []byte, i, ce int) (key, value []byte) {
	k0, k1, v := i, ce, ce
	if c := bytes.IndexByte(buf[i:ce], ':'); c >= 0 {
		k1, v = i+c, i+c+1
		if v < ce && buf[v] == ' ' {
			v++
		}
	}
	for k1 > k0 && isBlank(buf[k1-1]) {
		k1--
	}
	for k0 < k1 && isBlank(buf[k0]) {
		k0++
	}
	return buf[k0:k1], buf[v:ce]
}

// follows reads the rest of a "Response: Follows" reply: its few fields, then output
// lines up to the one ending in "--END COMMAND--", which ends the packet.
func (r *Reader) follows() (done, more bool, err error) {
	buf := r.buf[:r.w]
	i := r.r
	defer func() { r.r = i }()
	for {
		nl := bytes.IndexByte(buf[i:], '\n')
		if nl < 0 {
			return false, true, nil
		}
		e := i + nl
		ce := e
		if ce > i && buf[ce-1] == '\r' {
			ce--
		}
		if ce-i > r.maxLine {
			return false, false, r.lineErr(ce - i)
		}
		if e+1-r.pkt0 > r.maxPacket {
			return false, false, r.packetErr()
		}
		if m := endCommandAt(buf[i:ce]); m >= 0 {
			if r.out0 < 0 {
				r.out0 = i
			}
			r.pkt.Output = buf[r.out0 : i+m]
			i = e + 1
			r.finish(e + 1)
			return true, false, nil
		}
		if r.state == stFollowsHdr && !(ce > i && r.followsHeader(buf, i, ce)) {
			r.state = stOutput
			r.out0 = i
		}
		i = e + 1
	}
}

// finish closes the packet in progress, whose bytes end before end.
func (r *Reader) finish(end int) {
	r.pkt.buf = r.buf[r.pkt0:end]
	r.state = stIdle
	r.out0 = -1
}

// addField appends the field on line buf[i:ce].
func (r *Reader) addField(buf []byte, i, ce int) {
	k, v := splitField(buf, i, ce)
	r.pkt.fields = append(r.pkt.fields, Field{Key: k, Value: v})
}

// followsHeader adds the line buf[i:ce] as a field when it is one of the fields Asterisk
// writes between "Response: Follows" and the command output; anything else starts the
// output, which may itself hold "Key: value" lines.
func (r *Reader) followsHeader(buf []byte, i, ce int) bool {
	c := bytes.IndexByte(buf[i:ce], ':')
	if c < 0 {
		return false
	}
	k := buf[i : i+c]
	if !wire.EqualFold(k, "Privilege") && !wire.EqualFold(k, "ActionID") {
		return false
	}
	r.addField(buf, i, ce)
	return true
}

// isFollows reports whether f is "Response: Follows", which announces raw output.
func isFollows(f Field) bool {
	return wire.EqualFold(f.Key, "Response") && wire.EqualFold(f.Value, "Follows")
}

// endCommandAt returns where "--END COMMAND--" starts when line ends with it (trailing
// blanks aside; old Asterisk glues it to output that lacks a final newline), or -1.
func endCommandAt(line []byte) int {
	n := len(line)
	for n > 0 && (line[n-1] == ' ' || line[n-1] == '\t' || line[n-1] == '\r') {
		n--
	}
	if n < len(endCommand) || string(line[n-len(endCommand):n]) != endCommand {
		return -1
	}
	return n - len(endCommand)
}

// checkPartial fails when the unterminated line at the end of the buffer is already too
// long, so a line that never ends cannot grow the buffer. A last "\r" may be the start
// of the line end and is not counted.
func (r *Reader) checkPartial() error {
	n := r.w - r.r
	if n > 0 && r.buf[r.w-1] == '\r' {
		n--
	}
	if n > r.maxLine {
		return r.lineErr(n)
	}
	return nil
}

func (r *Reader) lineErr(n int) error {
	return fmt.Errorf("%w: at least %d bytes, limit %d", ErrLineTooLong, n, r.maxLine)
}

func (r *Reader) packetErr() error {
	return fmt.Errorf("%w: over %d bytes", ErrPacketTooLarge, r.maxPacket)
}

// fill reads more bytes, first moving the bytes still needed to the front of the buffer
// when its free tail runs short. The fields parsed so far move with them.
func (r *Reader) fill() error {
	if r.rerr != nil {
		err := r.rerr
		r.rerr = nil
		return err
	}
	base := r.r
	if r.state != stIdle {
		base = r.pkt0
	}
	if base > 0 && len(r.buf)-r.w < len(r.buf)/2 {
		r.compact(base)
	}
	if r.w == len(r.buf) {
		// The limits make this unreachable: the buffer holds a full packet and an
		// overlong line. Fail rather than spin.
		return r.packetErr()
	}
	n, pending, err := wire.Fill(r.rd, r.buf[r.w:])
	r.w += n
	if pending != nil {
		r.rerr = pending
	}
	return err
}

// compact moves buf[base:w] to the front and rebases the fields parsed so far, which
// were sliced from buf with their capacity running to its end.
func (r *Reader) compact(base int) {
	copy(r.buf, r.buf[base:r.w])
	c := cap(r.buf)
	for j := range r.pkt.fields {
		f := &r.pkt.fields[j]
		ko := c - cap(f.Key) - base
		vo := c - cap(f.Value) - base
		f.Key = r.buf[ko : ko+len(f.Key)]
		f.Value = r.buf[vo : vo+len(f.Value)]
	}
	r.r -= base
	r.w -= base
	r.pkt0 -= base
	if r.out0 >= 0 {
		r.out0 -= base
	}
	if r.pkt0 < 0 {
		r.pkt0 = 0
	}
}
