package asterisk

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"

	"callbridge/internal/call"
	"callbridge/internal/intern"
)

// chanKind is what a channel stands for in a customer conversation. Asterisk says
// nothing about it; it follows from the PBX's conventions in Options.
type chanKind uint8

const (
	// kindPhone is an internal extension: a SIP phone (PJSIP/101-…) or the half of a
	// Local channel that runs in an internal context (Local/101@phones-…).
	kindPhone chanKind = iota + 1
	// kindTrunk is the outside world reached through a trunk: an endpoint listed in
	// TrunkEndpoints or one whose own context receives external calls.
	kindTrunk
	// kindEntry is a Local channel running an external context: an inbound call
	// entering the dialplan (Local/101@from-pstn-…), simulated trunks included.
	kindEntry
	// kindOutside is a Local channel to a number that is not internal, in a context
	// that is not internal: an outbound route (Local/0612345678@pstn-out-…).
	kindOutside
)

// chanInfo is what a channel's name and first context tell about it.
type chanInfo struct {
	kind  chanKind
	local bool
	// half is 1 or 2 for the halves of a Local channel, 0 otherwise.
	half byte
	// ext is the extension of a kindPhone channel, the number of a kindOutside one and
	// the dialled exten of a kindEntry one.
	ext string
}

// rules holds the PBX's conventions, compiled from Options.
type rules struct {
	internal map[string]bool
	external map[string]bool
	trunks   []string
	pattern  *regexp.Regexp
	intern   *intern.Pool
}

// defaultInternalPattern: numbers of 2–5 digits are extensions, longer ones are
// outside numbers; one digit is usually a menu choice or a feature code.
const defaultInternalPattern = `^[0-9]{2,5}$`

func newRules(o *Options, in *intern.Pool) (*rules, error) {
	r := &rules{internal: map[string]bool{}, external: map[string]bool{}, intern: in}
	for _, c := range o.InternalContexts {
		r.internal[c] = true
	}
	for _, c := range o.ExternalContexts {
		if r.internal[c] {
			return nil, fmt.Errorf("asterisk: context %q is both internal and external", c)
		}
		r.external[c] = true
	}
	for _, t := range o.TrunkEndpoints {
		if t = strings.TrimSpace(t); t != "" {
			r.trunks = append(r.trunks, t)
		}
	}
	pat := o.InternalPattern
	if pat == "" {
		pat = defaultInternalPattern
	}
	re, err := regexp.Compile(pat)
	if err != nil {
		return nil, fmt.Errorf("asterisk: internal pattern: %w", err)
	}
	r.pattern = re
	return r, nil
}

// isInternalNumber reports whether n is an extension number by the configured pattern.
func (r *rules) isInternalNumber(n string) bool { return n != "" && r.pattern.MatchString(n) }

// isTrunk reports whether a channel name belongs to a configured trunk endpoint. An
// entry matches a whole endpoint ("PJSIP/trunk" matches PJSIP/trunk-0000002a but not
// PJSIP/trunk2-…); an entry ending in "/" matches a whole technology ("DAHDI/").
func (r *rules) isTrunk(name []byte) bool {
	for _, t := range r.trunks {
		if len(name) < len(t) || string(name[:len(t)]) != t {
			continue
		}
		if t[len(t)-1] == '/' || len(name) == len(t) {
			return true
		}
		if c := name[len(t)]; c == '-' || c == '/' || c == ';' {
			return true
		}
	}
	return false
}

// classify tells what a channel stands for from its name and the context it was
// created in (for a SIP channel, its endpoint's context).
//
//   - Local/X@C: C external → an inbound entry; C internal → the phone X; otherwise X
//     decides: an internal number is a phone (queue members, follow-me), anything else
//     an outside number.
//   - Any other technology: a configured trunk, or an endpoint whose context receives
//     external calls, is the outside world; everything else is a phone named by its
//     endpoint (PJSIP/101-00000089 → 101).
func (r *rules) classify(name, context []byte) chanInfo {
	if bytes.HasPrefix(name, []byte("Local/")) {
		return r.classifyLocal(name)
	}
	if r.isTrunk(name) || (len(context) > 0 && r.external[string(context)]) {
		return chanInfo{kind: kindTrunk}
	}
	return chanInfo{kind: kindPhone, ext: r.intern.Bytes(endpoint(name))}
}

func (r *rules) classifyLocal(name []byte) chanInfo {
	info := chanInfo{local: true}
	body := name[len("Local/"):]
	if n := len(body); n >= 2 && body[n-2] == ';' {
		info.half = body[n-1] - '0'
		body = body[:n-2]
	}
	at := bytes.LastIndexByte(body, '@')
	if at < 0 {
		info.kind = kindOutside
		info.ext = r.intern.Bytes(body)
		return info
	}
	exten, ctx := body[:at], body[at+1:]
	// The context is followed by "-<seq>" (Local/101@phones-00000003); a "/n" option
	// can only be part of the dial string, never of the channel name.
	if d := bytes.LastIndexByte(ctx, '-'); d >= 0 {
		ctx = ctx[:d]
	}
	info.ext = r.intern.Bytes(exten)
	switch {
	case r.external[string(ctx)]:
		info.kind = kindEntry
	case r.internal[string(ctx)], r.isInternalNumber(info.ext):
		info.kind = kindPhone
	default:
		info.kind = kindOutside
	}
	return info
}

// endpoint is the resource of a non-Local channel name: PJSIP/101-00000089 → 101,
// SIP/trunk-0000a1 → trunk, DAHDI/i1/5551234-1 → i1/5551234.
func endpoint(name []byte) []byte {
	if s := bytes.IndexByte(name, '/'); s >= 0 {
		name = name[s+1:]
	}
	if d := bytes.LastIndexByte(name, '-'); d > 0 {
		name = name[:d]
	}
	return name
}

// rootDirection is the direction a call has from the channel that started it, and
// whether that channel alone decides it. A phone that starts a call (dialling out, or
// rung first by a click-to-call Originate) leaves it open until its first dial.
func rootDirection(k chanKind) (call.Direction, bool) {
	switch k {
	case kindTrunk, kindEntry:
		return call.DirectionIn, true
	case kindOutside:
		// Originate to the outside number first, the agent second.
		return call.DirectionOut, true
	}
	return "", false
}

// dialDirection is the direction of a call started by a phone, from the first
// destination it dials: another phone makes it internal, the outside world outbound.
func dialDirection(target chanKind) call.Direction {
	switch target {
	case kindTrunk, kindOutside:
		return call.DirectionOut
	}
	return call.DirectionInternal
}

// dialledNumber is the number a dial string reaches: "0612345678@trunk" →
// 0612345678, "trunk/sip:+33612345678@host" → +33612345678, "101" → 101.
func dialledNumber(ds []byte) []byte {
	if s := bytes.LastIndexByte(ds, '/'); s >= 0 {
		ds = ds[s+1:]
	}
	for _, p := range [...]string{"sip:", "sips:", "tel:"} {
		if len(ds) >= len(p) && strings.EqualFold(string(ds[:len(p)]), p) {
			ds = ds[len(p):]
			break
		}
	}
	if a := bytes.IndexByte(ds, '@'); a >= 0 {
		ds = ds[:a]
	}
	if c := bytes.IndexByte(ds, ','); c >= 0 {
		ds = ds[:c]
	}
	return ds
}

// presented is a caller id as the PBX shows it, "" for Asterisk's "<unknown>".
func presented(b []byte) []byte {
	if len(b) == 0 || string(b) == "<unknown>" {
		return nil
	}
	return b
}
