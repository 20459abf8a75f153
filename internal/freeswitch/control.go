package freeswitch

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"regexp"
	"strconv"
	"strings"
	"time"

	"callbridge/internal/call"
	"callbridge/internal/hub"
)

// originateTimeout is how long a click-to-call rings the agent.
const originateTimeout = 30 * time.Second

// ErrNoCall: the command names a call FreeSWITCH is not running (any more), or a leg
// the call no longer has. It wraps hub.ErrEnded, so the API answers 409.
var ErrNoCall = fmt.Errorf("freeswitch: no such call: %w", hub.ErrEnded)

// Control carries a command to FreeSWITCH as API commands. FreeSWITCH's -ERR reply
// comes back as an error wrapping ErrCommandFailed with FreeSWITCH's text.
func (c *Connector) Control(ctx context.Context, cmd hub.Command) error {
	s, sink, err := c.session0()
	if err != nil {
		return err
	}
	for _, n := range []string{cmd.Extension, cmd.To} {
		if n != "" && !numberPattern.MatchString(n) {
			return fmt.Errorf("freeswitch: %s: %w: %.40q is not a number FreeSWITCH can dial", cmd.Action, call.ErrInvalid, n)
		}
	}
	switch cmd.Action {
	case hub.ActionOriginate:
		return c.originate(ctx, s, sink, cmd)
	case hub.ActionAgent:
		return c.agentStatus(ctx, s, cmd)
	}
	c.mu.Lock()
	legs, ok := c.corr.Legs(cmd.PBXCallID)
	c.mu.Unlock()
	if !ok {
		return fmt.Errorf("freeswitch: %s: call %s: %w", cmd.Action, cmd.PBXCallID, ErrNoCall)
	}
	agent := legs.Agent
	if cmd.Extension != "" && legs.ByExt[cmd.Extension] != "" {
		agent = legs.ByExt[cmd.Extension]
	}
	switch cmd.Action {
	case hub.ActionAnswer:
		return c.answer(ctx, s, cmd, legs)
	case hub.ActionHangup:
		// A ringing extension that hangs up rejects the call for itself; otherwise the
		// customer's leg goes, which ends the conversation.
		target, cause := legs.Customer, "NORMAL_CLEARING"
		if cmd.Extension != "" && legs.ByExt[cmd.Extension] != "" && !legs.AgentUp {
			target, cause = legs.ByExt[cmd.Extension], "CALL_REJECTED"
		}
		if target == "" {
			target = agent
		}
		if target == "" {
			return fmt.Errorf("freeswitch: hangup: call %s: %w: no channel left", cmd.PBXCallID, ErrNoCall)
		}
		return c.api(ctx, s, "uuid_kill", target, cause)
	case hub.ActionHold, hub.ActionResume:
		// uuid_hold holds a channel the way its phone's hold key would: that side goes
		// quiet and its partner hears the hold music. The agent's leg is held, so the
		// customer waits with music.
		if agent == "" || !legs.AgentUp {
			return fmt.Errorf("freeswitch: %s: call %s: %w: nobody is talking to the customer", cmd.Action, cmd.PBXCallID, hub.ErrNotAllowed)
		}
		if cmd.Action == hub.ActionResume {
			return c.api(ctx, s, "uuid_hold", "off", agent)
		}
		return c.api(ctx, s, "uuid_hold", agent)
	case hub.ActionTransfer:
		if cmd.To == "" {
			return fmt.Errorf("freeswitch: transfer: %w: no target", call.ErrInvalid)
		}
		if cmd.Attended {
			// att_xfer runs on the agent's leg: the customer waits, the agent talks to
			// the target, and the agent's leaving joins the customer to the target.
			if agent == "" || !legs.AgentUp {
				return fmt.Errorf("freeswitch: transfer: call %s: %w: nobody is talking to the customer", cmd.PBXCallID, hub.ErrNotAllowed)
			}
			return c.api(ctx, s, "uuid_broadcast", agent, "att_xfer::"+c.dialString(cmd.To), "aleg")
		}
		if legs.Customer == "" {
			return fmt.Errorf("freeswitch: transfer: call %s: %w: no customer channel", cmd.PBXCallID, ErrNoCall)
		}
		return c.api(ctx, s, "uuid_transfer", legs.Customer, cmd.To, "XML", c.cfg.TransferContext)
	case hub.ActionTransferComplete, hub.ActionTransferCancel:
		if cmd.Action == hub.ActionTransferCancel {
			// Ending the consultation returns the agent to the customer.
			if legs.Consult == "" {
				return fmt.Errorf("freeswitch: transfer cancel: call %s: %w: no transfer in progress", cmd.PBXCallID, hub.ErrNotAllowed)
			}
			return c.api(ctx, s, "uuid_kill", legs.Consult, "NORMAL_CLEARING")
		}
		if agent == "" {
			return fmt.Errorf("freeswitch: transfer complete: call %s: %w: no agent on the call", cmd.PBXCallID, hub.ErrNotAllowed)
		}
		return c.api(ctx, s, "uuid_kill", agent, "NORMAL_CLEARING")
	case hub.ActionDTMF:
		if legs.Customer == "" {
			return fmt.Errorf("freeswitch: dtmf: call %s: %w: no customer channel", cmd.PBXCallID, ErrNoCall)
		}
		if cmd.Digits == "" {
			return fmt.Errorf("freeswitch: dtmf: %w: no digits", call.ErrInvalid)
		}
		for _, d := range cmd.Digits {
			if !strings.ContainsRune("0123456789*#ABCDabcd", d) {
				return fmt.Errorf("freeswitch: dtmf: %w: %q is not a DTMF digit", call.ErrInvalid, d)
			}
		}
		return c.api(ctx, s, "uuid_send_dtmf", legs.Customer, cmd.Digits)
	case hub.ActionConference:
		return c.conference(ctx, s, cmd, legs, agent)
	}
	return fmt.Errorf("freeswitch: %s: %w", cmd.Action, hub.ErrUnsupported)
}

// api runs one API command and discards its output: FreeSWITCH's refusal is the
// error.
func (c *Connector) api(ctx context.Context, s *Session, words ...string) error {
	_, err := s.API(ctx, strings.Join(words, " "))
	return err
}

// numberPattern is what a number or extension put into an API command may be:
// digits, letters (named users), * # . _ and a leading +. Anything else could change
// the command's meaning: a space shifts its arguments, "/" picks a loopback
// channel's context, "@" a domain, a leading "-" reads as a flag, commas and braces
// end channel variables.
// uuidPattern is a call id usable as origination_uuid.
var uuidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

var numberPattern = regexp.MustCompile(`^\+?[0-9A-Za-z*#][0-9A-Za-z*#._]{0,63}$`)

// dialString reaches a number: an extension through ExtensionChannel, anything else
// through the outbound context, as a loopback channel.
func (c *Connector) dialString(to string) string {
	if c.corr.Internal(to) {
		return strings.ReplaceAll(c.cfg.ExtensionChannel, "{ext}", to)
	}
	return "loopback/" + to + "/" + c.cfg.OutboundContext
}

// originate is click-to-call: FreeSWITCH rings the agent's extension first and, when
// it answers, dials the customer in OutboundContext (seed 002's make_call). The
// agent channel's uuid is preset to callbridge's call id, so the call keeps the id
// the API answered with. The command runs in the background: ringing the agent
// takes as long as the agent takes to answer.
func (c *Connector) originate(ctx context.Context, s *Session, sink hub.Sink, cmd hub.Command) error {
	if cmd.Extension == "" || cmd.To == "" {
		return fmt.Errorf("freeswitch: originate: %w: extension and number are required", call.ErrInvalid)
	}
	id := cmd.CallID
	if !uuidPattern.MatchString(id) {
		return fmt.Errorf("freeswitch: originate: %w: call id %.40q is not a uuid", call.ErrInvalid, id)
	}
	c.mu.Lock()
	c.originated.Add(id, id)
	c.mu.Unlock()
	vars := strings.Join([]string{
		"origination_uuid=" + id,
		"callbridge_call_id=" + id,
		// The agent's phone shows whom it is about to call.
		"origination_caller_id_number=" + cmd.To,
		"origination_caller_id_name=" + cmd.To,
		"ignore_early_media=true",
		"originate_timeout=" + strconv.Itoa(int(originateTimeout/time.Second)),
		"hangup_after_bridge=true",
	}, ",")
	line := "originate {" + vars + "}" + strings.ReplaceAll(c.cfg.ExtensionChannel, "{ext}", cmd.Extension) +
		" " + cmd.To + " XML " + c.cfg.OutboundContext
	c.smu.Lock()
	if c.stopped {
		c.smu.Unlock()
		return fmt.Errorf("freeswitch: %s: %w", c.cfg.ID, ErrNotConnected)
	}
	c.jobs.Add(1)
	c.smu.Unlock()
	go func() {
		defer c.jobs.Done()
		// The job outlives the request (202 is answered now) but not the session:
		// Close fails it with ErrClosed.
		jctx, cancel := context.WithTimeout(context.Background(), originateTimeout+15*time.Second)
		defer cancel()
		_, err := s.BgAPI(jctx, line)
		if err == nil {
			return
		}
		c.log.Warn("click-to-call failed", "call", id, "extension", cmd.Extension, "err", err)
		c.originateFailed(sink, cmd, id, err)
	}()
	return nil
}

// originateFailed records a click-to-call FreeSWITCH refused before any channel
// existed (the agent's phone unregistered, busy, not answering): the API answered
// with the call's id, so the call must exist, ended, rather than vanish. It is the
// record the correlator makes of an agent leg that rang and failed: outbound to the
// number, offered to the agent, ended, final; a call between extensions nobody took
// leaves none, as there is no customer to call back.
func (c *Connector) originateFailed(sink hub.Sink, cmd hub.Command, id string, err error) {
	if !errors.Is(err, ErrCommandFailed) || sink == nil || c.corr.Internal(cmd.To) {
		return
	}
	c.out.Produce(sink.Update, func() []call.Update {
		c.mu.Lock()
		defer c.mu.Unlock()
		if !c.originated.Take(id) {
			return nil // the correlator saw the channel: its hang-up ends the call
		}
		at := c.clock.Now(time.Now())
		cause := failCause(err.Error())
		disp, ok := causeDisposition(cause)
		if !ok || disp == call.DispositionCancelled {
			disp = call.DispositionFailed
		}
		return []call.Update{
			{PBX: c.cfg.ID, PBXCallID: id, CallID: id, Time: at, Kind: call.KindRing,
				Direction: call.DirectionOut, Customer: cmd.To, Extensions: []string{cmd.Extension}},
			{PBX: c.cfg.ID, PBXCallID: id, Time: at, Kind: call.KindEnd, Cause: cause, Disposition: disp},
			{PBX: c.cfg.ID, PBXCallID: id, Time: at, Kind: call.KindFinal},
		}
	})
}

// failCause is the hang-up cause in an originate's "-ERR USER_BUSY" reply.
func failCause(msg string) string {
	_, rest, ok := strings.Cut(msg, "-ERR ")
	if !ok {
		if i := strings.LastIndex(msg, ": "); i >= 0 {
			rest = msg[i+2:]
		}
	}
	f := strings.Fields(rest)
	if len(f) == 0 {
		return "FAILED"
	}
	return f[0]
}

// agentStatuses maps callbridge's agent statuses onto mod_callcenter's: anything
// but available or logged out is a break (mod_callcenter has no pause reasons).
func agentStatusFor(status string) string {
	switch strings.ToLower(status) {
	case "available":
		return "Available"
	case "available_on_demand":
		return "Available (On Demand)"
	case "logged_out", "offline":
		return "Logged Out"
	}
	return "On Break"
}

// agentStatus sets the extension's mod_callcenter agent status, naming the agent as
// the PBX last reported it, else by AgentName.
func (c *Connector) agentStatus(ctx context.Context, s *Session, cmd hub.Command) error {
	if cmd.Extension == "" {
		return fmt.Errorf("freeswitch: agent status: %w: no extension", call.ErrInvalid)
	}
	c.mu.Lock()
	agent := c.agents[cmd.Extension]
	c.mu.Unlock()
	if agent == "" {
		agent = strings.ReplaceAll(c.cfg.AgentName, "{ext}", cmd.Extension)
	}
	return c.api(ctx, s, "callcenter_config", "agent", "set", "status", agent, "'"+agentStatusFor(cmd.Status)+"'")
}

// answer makes a ringing call answered: an extension's ringing phone is asked to go
// off-hook (a SIP NOTIFY "talk", which Yealink, Polycom, Snom and others honour when
// allowed); a customer waiting unanswered in the dialplan is answered by the switch.
func (c *Connector) answer(ctx context.Context, s *Session, cmd hub.Command, legs Legs) error {
	ext := cmd.Extension
	if ext != "" && legs.ByExt[ext] == "" {
		// Answering is permitted for the extension named, not for whichever rings.
		return fmt.Errorf("freeswitch: answer: call %s: %w: extension %s is not ringing", cmd.PBXCallID, hub.ErrNotAllowed, ext)
	}
	if ext == "" {
		for e := range legs.ByExt {
			if ext != "" {
				return fmt.Errorf("freeswitch: answer: call %s rings several extensions; say which one answers", cmd.PBXCallID)
			}
			ext = e
		}
	}
	if ext != "" {
		return c.api(ctx, s, "uuid_phone_event", legs.ByExt[ext], "talk")
	}
	if legs.Customer == "" {
		return fmt.Errorf("freeswitch: answer: call %s: %w: nothing is ringing", cmd.PBXCallID, ErrNoCall)
	}
	return c.api(ctx, s, "uuid_answer", legs.Customer)
}

// conference moves the customer and the agent into a mod_conference room named
// after the call, then calls the third party into it.
func (c *Connector) conference(ctx context.Context, s *Session, cmd hub.Command, legs Legs, agent string) error {
	if legs.Customer == "" || agent == "" || !legs.AgentUp {
		return fmt.Errorf("freeswitch: conference: call %s: %w: the customer must be talking to an extension", cmd.PBXCallID, hub.ErrNotAllowed)
	}
	if cmd.To == "" {
		return fmt.Errorf("freeswitch: conference: %w: no party to add", call.ErrInvalid)
	}
	h := fnv.New32a()
	h.Write([]byte(cmd.PBXCallID))
	room := "cb" + strconv.FormatUint(uint64(h.Sum32()), 16) + "@" + c.cfg.ConferenceProfile
	if err := c.api(ctx, s, "uuid_transfer", legs.Customer, "-both", "conference:"+room, "inline"); err != nil {
		return err
	}
	return c.api(ctx, s, "bgapi", "originate", c.dialString(cmd.To), "&conference("+room+")")
}

// Capabilities are the call actions FreeSWITCH can perform: all of them.
func (c *Connector) Capabilities() []string {
	return []string{call.ActionAnswer, call.ActionHangup, call.ActionHold, call.ActionResume,
		call.ActionTransfer, call.ActionConference, call.ActionDTMF}
}
