// Package wire holds what the line-oriented PBX codecs (Asterisk AMI, FreeSWITCH ESL)
// share below their framing: case-insensitive names and a guarded read.
package wire

import (
	"errors"
	"io"
)

// EqualFold compares ASCII bytes with a name, ignoring ASCII case, without
// allocating: AMI keys and ESL header names are case-insensitive.
func EqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		x, y := b[i], s[i]
		if x == y {
			continue
		}
		if x|0x20 != y|0x20 || x|0x20 < 'a' || x|0x20 > 'z' {
			return false
		}
	}
	return true
}

// ErrInvalidCount: the underlying reader claimed to read more than it was given
// room for, or a negative count; its data cannot be trusted.
var ErrInvalidCount = errors.New("wire: reader returned an invalid count")

// maxEmptyReads bounds reads that return neither data nor an error before Fill
// gives up with io.ErrNoProgress, as bufio does.
const maxEmptyReads = 100

// Fill reads into p until some data arrives or an error does. An error that came
// with data is returned as pending, to be reported once that data is parsed; err is
// an error that came without data.
func Fill(rd io.Reader, p []byte) (n int, pending, err error) {
	for range maxEmptyReads {
		n, err := rd.Read(p)
		if n < 0 || n > len(p) {
			return 0, nil, ErrInvalidCount
		}
		if err != nil {
			if n > 0 {
				return n, err, nil
			}
			return 0, nil, err
		}
		if n > 0 {
			return n, nil, nil
		}
	}
	return 0, nil, io.ErrNoProgress
}
