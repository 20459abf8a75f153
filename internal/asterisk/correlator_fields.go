package asterisk

import (
	"time"

	"callbridge/internal/asterisk/ami"
	"callbridge/internal/wire"
)

// evKind is an AMI event the correlator acts on.
type evKind uint8

const (
	evIgnore evKind = iota
	evNewchannel
	evNewstate
	evNewCallerid
	evLocalBridge
	evDialBegin
	evDialEnd
	evBridgeEnter
	evBridgeLeave
	evBridgeMerge
	evHold
	evUnhold
	evDTMFEnd
	evHangup
	evBlindTransfer
	evAttendedTransfer
	evVarSet
	evQueueCallerJoin
	evQueueCallerLeave
	evQueueCallerAbandon
	evAgentCalled
	evConfbridgeJoin
	evConfbridgeLeave
	evCdr
	evOriginateResponse
	evCoreShowChannel
	evStatus
	evBridgeListItem
)

// eventKind maps an event name (any case: Newexten and NewExten are the same event)
// to what the correlator does with it. Names come lower-cased.
func eventKind(lower []byte) evKind {
	switch string(lower) {
	case "newchannel":
		return evNewchannel
	case "newstate":
		return evNewstate
	case "newcallerid":
		return evNewCallerid
	case "localbridge":
		return evLocalBridge
	case "dialbegin":
		return evDialBegin
	case "dialend":
		return evDialEnd
	case "bridgeenter":
		return evBridgeEnter
	case "bridgeleave":
		return evBridgeLeave
	case "bridgemerge":
		return evBridgeMerge
	case "hold":
		return evHold
	case "unhold":
		return evUnhold
	case "dtmfend":
		return evDTMFEnd
	case "hangup":
		return evHangup
	case "blindtransfer":
		return evBlindTransfer
	case "attendedtransfer":
		return evAttendedTransfer
	case "varset":
		return evVarSet
	case "queuecallerjoin":
		return evQueueCallerJoin
	case "queuecallerleave":
		return evQueueCallerLeave
	case "queuecallerabandon":
		return evQueueCallerAbandon
	case "agentcalled":
		return evAgentCalled
	case "confbridgejoin":
		return evConfbridgeJoin
	case "confbridgeleave":
		return evConfbridgeLeave
	case "cdr":
		return evCdr
	case "originateresponse":
		return evOriginateResponse
	case "coreshowchannel":
		return evCoreShowChannel
	case "status":
		return evStatus
	case "bridgelistitem":
		return evBridgeListItem
	}
	return evIgnore
}

// Field keys the correlator reads. An event's fields are indexed once, in one pass,
// instead of one linear lookup per key.
const (
	fTimestamp = iota
	fChannel
	fChannelState
	fCallerIDNum
	fContext
	fExten
	fUniqueid
	fLinkedid
	fDestChannel
	fDestChannelState
	fDestCallerIDNum
	fDestContext
	fDestExten
	fDestUniqueid
	fDestLinkedid
	fDialString
	fDialStatus
	fCause
	fBridgeUniqueid
	fBridgeTechnology
	fSwapUniqueid
	fToBridgeUniqueid
	fFromBridgeUniqueid
	fLocalOneUniqueid
	fLocalTwoUniqueid
	fVariable
	fValue
	fDigit
	fDirection
	fResult
	fTransfererUniqueid
	fTransfereeUniqueid
	fExtension
	fOrigTransfererUniqueid
	fSecondTransfererUniqueid
	fTransferTargetUniqueid
	fInterface
	fResponse
	fReason
	fBridgeID
	fDuration
	fSeconds
	nFields
)

// fieldKey maps a lower-cased key to its index, -1 for keys the correlator ignores.
func fieldKey(lower []byte) int {
	switch string(lower) {
	case "timestamp":
		return fTimestamp
	case "channel":
		return fChannel
	case "channelstate":
		return fChannelState
	case "calleridnum":
		return fCallerIDNum
	case "context":
		return fContext
	case "exten":
		return fExten
	case "uniqueid":
		return fUniqueid
	case "linkedid":
		return fLinkedid
	case "destchannel":
		return fDestChannel
	case "destchannelstate":
		return fDestChannelState
	case "destcalleridnum":
		return fDestCallerIDNum
	case "destcontext":
		return fDestContext
	case "destexten":
		return fDestExten
	case "destuniqueid":
		return fDestUniqueid
	case "destlinkedid":
		return fDestLinkedid
	case "dialstring":
		return fDialString
	case "dialstatus":
		return fDialStatus
	case "cause":
		return fCause
	case "bridgeuniqueid":
		return fBridgeUniqueid
	case "bridgetechnology":
		return fBridgeTechnology
	case "swapuniqueid":
		return fSwapUniqueid
	case "tobridgeuniqueid":
		return fToBridgeUniqueid
	case "frombridgeuniqueid":
		return fFromBridgeUniqueid
	case "localoneuniqueid":
		return fLocalOneUniqueid
	case "localtwouniqueid":
		return fLocalTwoUniqueid
	case "variable":
		return fVariable
	case "value":
		return fValue
	case "digit":
		return fDigit
	case "direction":
		return fDirection
	case "result":
		return fResult
	case "transfereruniqueid":
		return fTransfererUniqueid
	case "transfereeuniqueid":
		return fTransfereeUniqueid
	case "extension":
		return fExtension
	case "origtransfereruniqueid":
		return fOrigTransfererUniqueid
	case "secondtransfereruniqueid":
		return fSecondTransfererUniqueid
	case "transfertargetuniqueid":
		return fTransferTargetUniqueid
	case "interface":
		return fInterface
	case "response":
		return fResponse
	case "reason":
		return fReason
	case "bridgeid":
		return fBridgeID
	case "duration":
		return fDuration
	case "seconds":
		return fSeconds
	}
	return -1
}

// maxKey is the longest key fieldKey knows; longer keys are skipped unread.
const maxKey = len("secondtransfereruniqueid")

// fieldIndex holds, for each known key, 1 + the position of its first field in the
// packet (0: absent). It aliases the packet being fed.
type fieldIndex struct {
	pos    [nFields]uint16
	fields []ami.Field
}

func (x *fieldIndex) load(p *ami.Packet) {
	x.pos = [nFields]uint16{}
	x.fields = p.Fields()
	var buf [maxKey]byte
	for i := range x.fields {
		if i >= 1<<16-1 {
			break
		}
		k := x.fields[i].Key
		if len(k) > maxKey || len(k) == 0 {
			continue
		}
		id := fieldKey(lower(buf[:len(k)], k))
		if id >= 0 && x.pos[id] == 0 {
			x.pos[id] = uint16(i + 1)
		}
	}
}

// get returns the value of field f, nil when absent. It aliases the packet.
func (x *fieldIndex) get(f int) []byte {
	if p := x.pos[f]; p != 0 {
		return x.fields[p-1].Value
	}
	return nil
}

func (x *fieldIndex) has(f int) bool { return x.pos[f] != 0 }

// lower writes the ASCII lower case of s into dst (len(dst) == len(s)) and returns dst.
func lower(dst, s []byte) []byte {
	for i, c := range s {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst[i] = c
	}
	return dst
}

// eventName returns the packet's Event value without allocating, nil when the packet
// is not an event (a response, an action).
func eventName(p *ami.Packet) []byte {
	fs := p.Fields()
	if len(fs) > 0 && wire.EqualFold(fs[0].Key, "Event") {
		return fs[0].Value
	}
	return p.GetBytes("Event")
}

// varSetVariable finds a VarSet's variable name and value. Asterisk writes them as the
// last two fields, which are tried first: VarSet is a third of all traffic.
func varSetVariable(p *ami.Packet) (name, value []byte) {
	fs := p.Fields()
	if n := len(fs); n >= 2 && wire.EqualFold(fs[n-2].Key, "Variable") && wire.EqualFold(fs[n-1].Key, "Value") {
		return fs[n-2].Value, fs[n-1].Value
	}
	return p.GetBytes("Variable"), p.GetBytes("Value")
}

// parseStamp reads an AMI Timestamp ("1763713812.123456", Unix seconds with up to
// nanosecond digits) without allocating.
func parseStamp(b []byte) (time.Time, bool) {
	if len(b) == 0 {
		return time.Time{}, false
	}
	var sec, frac int64
	i := 0
	for ; i < len(b) && b[i] != '.'; i++ {
		d := b[i] - '0'
		if d > 9 || sec > 1<<40 {
			return time.Time{}, false
		}
		sec = sec*10 + int64(d)
	}
	if i == 0 {
		return time.Time{}, false
	}
	digits := 0
	if i < len(b) {
		for i++; i < len(b); i++ {
			d := b[i] - '0'
			if d > 9 {
				return time.Time{}, false
			}
			if digits < 9 {
				frac = frac*10 + int64(d)
				digits++
			}
		}
	}
	for ; digits < 9; digits++ {
		frac *= 10
	}
	if sec == 0 && frac == 0 {
		return time.Time{}, false
	}
	return time.Unix(sec, frac), true
}

// parseUint reads a small decimal number ("17", "8"), -1 when b is not one.
func parseUint(b []byte) int {
	if len(b) == 0 || len(b) > 9 {
		return -1
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// parseDuration reads CoreShowChannel's "HH:MM:SS" (hours may exceed 24) as seconds,
// -1 when malformed.
func parseDuration(b []byte) int {
	total, part, fields := 0, 0, 0
	digits := 0
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			if digits++; digits > 9 {
				return -1
			}
			part = part*10 + int(c-'0')
		case c == ':':
			total, part, digits = total*60+part, 0, 0
			fields++
		default:
			return -1
		}
	}
	if digits == 0 || fields > 2 {
		return -1
	}
	return total*60 + part
}
