package asterisk

import (
	"context"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"

	"callbridge/internal/call"
	"callbridge/internal/hub"
)

// Control carries a command to Asterisk as AMI actions. Asterisk's refusal comes back
// as an error wrapping ErrActionFailed with Asterisk's message.
func (c *Connector) Control(ctx context.Context, cmd hub.Command) error {
	s, err := c.session0()
	if err != nil {
		return err
	}
	switch cmd.Action {
	case hub.ActionOriginate:
		return c.originate(ctx, s, cmd)
	case hub.ActionAgent:
		return c.agentStatus(ctx, s, cmd)
	case hub.ActionAnswer:
		return c.answer(ctx, s, cmd)
	case hub.ActionHold, hub.ActionResume:
		return fmt.Errorf("asterisk: %s: %w: AMI has no hold action; hold from the phone (Asterisk reports it)", cmd.Action, hub.ErrUnsupported)
	}
	c.mu.Lock()
	legs, ok := c.corr.Legs(cmd.PBXCallID)
	c.mu.Unlock()
	if !ok {
		return fmt.Errorf("asterisk: %s: call %s: %w", cmd.Action, cmd.PBXCallID, ErrNoCall)
	}
	agent := legs.Agent
	if cmd.Extension != "" && legs.ByExt[cmd.Extension] != "" {
		agent = legs.ByExt[cmd.Extension]
	}
	switch cmd.Action {
	case hub.ActionHangup:
		// A ringing extension that hangs up rejects the call for itself; otherwise the
		// customer's leg goes, which ends the conversation.
		target, cause := legs.Customer, "16"
		if cmd.Extension != "" && legs.ByExt[cmd.Extension] != "" && legs.Agent == "" {
			target, cause = legs.ByExt[cmd.Extension], "21"
		}
		if target == "" {
			target = agent
		}
		if target == "" {
			return fmt.Errorf("asterisk: hangup: call %s: %w: no channel left", cmd.PBXCallID, ErrNoCall)
		}
		return c.action(ctx, s, "Hangup", "Channel", target, "Cause", cause)
	case hub.ActionTransfer:
		if agent == "" {
			return fmt.Errorf("asterisk: transfer: call %s: %w: nobody is talking to the customer", cmd.PBXCallID, hub.ErrNotAllowed)
		}
		if cmd.To == "" {
			return fmt.Errorf("asterisk: transfer: %w: no target", call.ErrInvalid)
		}
		if cmd.Attended {
			return c.action(ctx, s, "Atxfer", "Channel", agent, "Context", c.cfg.TransferContext, "Exten", cmd.To)
		}
		return c.action(ctx, s, "BlindTransfer", "Channel", agent, "Context", c.cfg.TransferContext, "Exten", cmd.To)
	case hub.ActionTransferComplete, hub.ActionTransferCancel:
		// The agent who started Atxfer completes it by leaving (Asterisk joins the
		// customer to the target) or cancels it with the atxferabort feature.
		if agent == "" {
			return fmt.Errorf("asterisk: %s: call %s: %w: no agent on the call", cmd.Action, cmd.PBXCallID, hub.ErrNotAllowed)
		}
		if cmd.Action == hub.ActionTransferCancel {
			return c.action(ctx, s, "CancelAtxfer", "Channel", agent)
		}
		return c.action(ctx, s, "Hangup", "Channel", agent, "Cause", "16")
	case hub.ActionDTMF:
		if legs.Customer == "" {
			return fmt.Errorf("asterisk: dtmf: call %s: %w: no customer channel", cmd.PBXCallID, ErrNoCall)
		}
		for _, d := range cmd.Digits {
			if !strings.ContainsRune("0123456789*#ABCDabcd", d) {
				return fmt.Errorf("asterisk: dtmf: %w: %q is not a DTMF digit", call.ErrInvalid, d)
			}
		}
		for _, d := range cmd.Digits {
			if err := c.action(ctx, s, "PlayDTMF", "Channel", legs.Customer, "Digit", string(d), "Duration", "250"); err != nil {
				return err
			}
		}
		return nil
	case hub.ActionConference:
		return c.conference(ctx, s, cmd, legs, agent)
	}
	return fmt.Errorf("asterisk: %s: %w", cmd.Action, hub.ErrUnsupported)
}

// ErrNoCall: the command names a call Asterisk is not running (any more), or a leg
// the call no longer has. It wraps hub.ErrEnded, so the API answers 409.
var ErrNoCall = fmt.Errorf("asterisk: no such call: %w", hub.ErrEnded)

func (c *Connector) action(ctx context.Context, s *Session, name string, kv ...string) error {
	_, err := s.Action(ctx, name, kv...)
	return err
}

func (c *Connector) extChannel(ext string) string {
	return strings.ReplaceAll(c.cfg.ExtensionChannel, "{ext}", ext)
}

// originate is click-to-call: Asterisk rings the agent's extension first and, when it
// answers, dials the customer from OutboundContext (seed 002's make_call). The first
// channel's Uniqueid is preset to callbridge's call id, so the call keeps the id the
// API answered with.
func (c *Connector) originate(ctx context.Context, s *Session, cmd hub.Command) error {
	if cmd.Extension == "" || cmd.To == "" {
		return fmt.Errorf("asterisk: originate: %w: extension and number are required", call.ErrInvalid)
	}
	id := cmd.CallID
	if id != "" {
		c.mu.Lock()
		c.originated.Add(id, id)
		c.mu.Unlock()
	}
	kv := []string{
		"Channel", c.extChannel(cmd.Extension),
		"Context", c.cfg.OutboundContext,
		"Exten", cmd.To,
		"Priority", "1",
		// The agent's phone shows whom it is about to call.
		"CallerID", fmt.Sprintf("%q <%s>", cmd.To, cmd.To),
		"Timeout", "30000",
		"Async", "true",
	}
	if id != "" {
		kv = append(kv, "ChannelId", id, "Variable", "CALLBRIDGE_CALL_ID="+id)
	}
	err := c.action(ctx, s, "Originate", kv...)
	if err != nil {
		c.mu.Lock()
		c.originated.Take(id)
		c.mu.Unlock()
	}
	return err
}

// agentStatus maps callbridge's agent status onto queue pause: "available" unpauses
// the extension in every queue, anything else pauses it with the status as reason.
func (c *Connector) agentStatus(ctx context.Context, s *Session, cmd hub.Command) error {
	if cmd.Extension == "" {
		return fmt.Errorf("asterisk: agent status: %w: no extension", call.ErrInvalid)
	}
	paused := !strings.EqualFold(cmd.Status, "available")
	kv := []string{"Interface", c.extChannel(cmd.Extension), "Paused", strconv.FormatBool(paused)}
	if paused && cmd.Status != "" {
		kv = append(kv, "Reason", cmd.Status)
	}
	return c.action(ctx, s, "QueuePause", kv...)
}

// conference moves the customer and the agent into a ConfBridge room and brings the
// third party in. The room is a number derived from the call, dialled in
// ConferenceContext, whose dialplan must send any number to ConfBridge(${EXTEN}).
func (c *Connector) conference(ctx context.Context, s *Session, cmd hub.Command, legs Legs, agent string) error {
	if legs.Customer == "" || agent == "" {
		return fmt.Errorf("asterisk: conference: call %s: %w: the customer must be talking to an extension", cmd.PBXCallID, hub.ErrNotAllowed)
	}
	if cmd.To == "" {
		return fmt.Errorf("asterisk: conference: %w: no party to add", call.ErrInvalid)
	}
	h := fnv.New32a()
	h.Write([]byte(cmd.PBXCallID))
	room := strconv.FormatUint(uint64(80000000+h.Sum32()%10000000), 10)
	if err := c.action(ctx, s, "Redirect", "Channel", legs.Customer, "ExtraChannel", agent,
		"Context", c.cfg.ConferenceContext, "Exten", room, "Priority", "1",
		"ExtraContext", c.cfg.ConferenceContext, "ExtraExten", room, "ExtraPriority", "1"); err != nil {
		return err
	}
	party := c.extChannel(cmd.To)
	if !c.corr.r.isInternalNumber(cmd.To) {
		party = "Local/" + cmd.To + "@" + c.cfg.OutboundContext
	}
	return c.action(ctx, s, "Originate", "Channel", party, "Context", c.cfg.ConferenceContext, "Exten", room,
		"Priority", "1", "Timeout", "30000", "Async", "true")
}

// answer asks a ringing phone to go off-hook. Asterisk cannot answer for a SIP phone;
// the phone can, when it honours a NOTIFY with "Event: talk" (Yealink, Polycom, Snom
// and others do, when the administrator allows it), which PJSIPNotify sends.
func (c *Connector) answer(ctx context.Context, s *Session, cmd hub.Command) error {
	if !strings.HasPrefix(c.cfg.ExtensionChannel, "PJSIP/") {
		return fmt.Errorf("asterisk: answer: %w: only PJSIP phones can be asked to answer (extension channel %s); answer on the phone", hub.ErrUnsupported, c.cfg.ExtensionChannel)
	}
	c.mu.Lock()
	legs, ok := c.corr.Legs(cmd.PBXCallID)
	c.mu.Unlock()
	if !ok {
		return fmt.Errorf("asterisk: answer: call %s: %w", cmd.PBXCallID, ErrNoCall)
	}
	ext := cmd.Extension
	if ext == "" || legs.ByExt[ext] == "" {
		// The extension that rings: the only one, or the one the command names.
		ext = ""
		for e := range legs.ByExt {
			if ext != "" {
				return fmt.Errorf("asterisk: answer: call %s rings several extensions; say which one answers", cmd.PBXCallID)
			}
			ext = e
		}
	}
	if ext == "" {
		return fmt.Errorf("asterisk: answer: call %s: %w: no extension is ringing", cmd.PBXCallID, ErrNoCall)
	}
	endpoint := strings.TrimPrefix(strings.ReplaceAll(c.cfg.ExtensionChannel, "{ext}", ext), "PJSIP/")
	return c.action(ctx, s, "PJSIPNotify", "Endpoint", endpoint, "Variable", "Event=talk")
}

// Capabilities are the call actions Asterisk's AMI can perform: no hold or resume
// (phones hold by themselves), answer only for PJSIP phones.
func (c *Connector) Capabilities() []string {
	caps := []string{call.ActionHangup, call.ActionTransfer, call.ActionConference, call.ActionDTMF}
	if strings.HasPrefix(c.cfg.ExtensionChannel, "PJSIP/") {
		caps = append(caps, call.ActionAnswer)
	}
	return caps
}
