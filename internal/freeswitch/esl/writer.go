package esl

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

// ErrInjection reports a command or header that holds a CR or LF (or a header that is
// empty or has no colon), which would let its content add commands of its own.
var ErrInjection = errors.New("esl: CR or LF in command or header")

// Writer writes ESL commands. It is not safe for concurrent use: serialize calls (one
// goroutine, or a lock around each command and the wait for its reply).
type Writer struct {
	w   io.Writer
	buf []byte
}

// NewWriter returns a Writer to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w, buf: make([]byte, 0, 256)} }

// WriteCommand writes one command: the line cmd ("auth secret", "event plain ALL",
// "api show channels as json", "bgapi originate …"), then each header as a
// "Key: Value" line (sendmsg's "call-command: execute", "Job-UUID: …"), then the blank
// line that ends it, in a single Write. It refuses, writing nothing, an empty command
// and any CR or LF in the command or a header.
func (w *Writer) WriteCommand(cmd string, headers ...string) error {
	if cmd == "" || strings.TrimSpace(cmd) == "" {
		return fmt.Errorf("%w: empty command", ErrInjection)
	}
	if strings.ContainsAny(cmd, "\r\n") {
		return fmt.Errorf("%w: command %q", ErrInjection, cmdName(cmd))
	}
	for _, h := range headers {
		if strings.ContainsAny(h, "\r\n") || strings.IndexByte(h, ':') <= 0 {
			return fmt.Errorf("%w: header %q", ErrInjection, h)
		}
	}
	b := append(w.buf[:0], cmd...)
	b = append(b, '\n')
	for _, h := range headers {
		b = append(b, h...)
		b = append(b, '\n')
	}
	b = append(b, '\n')
	w.buf = b
	n, err := w.w.Write(b)
	if err == nil && n != len(b) {
		err = io.ErrShortWrite
	}
	if err != nil {
		return fmt.Errorf("esl: write %q: %w", cmdName(cmd), err)
	}
	return nil
}

// cmdName is the command's first word, so errors never echo a password.
func cmdName(cmd string) string {
	name, _, _ := strings.Cut(strings.TrimSpace(cmd), " ")
	return name
}
