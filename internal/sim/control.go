package sim

import (
	"context"
	"fmt"
	"slices"
	"time"

	"callbridge/internal/call"
	"callbridge/internal/hub"
)

// Control performs cmd as the PBX would. A command that changes a call replaces the
// rest of its script: the call then waits for the next command, or for the far end to
// hang up after 10-60 s of talk, so a demo call left alone still ends.
func (p *PBX) Control(ctx context.Context, cmd hub.Command) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sim: %s: %w", cmd.Action, err)
	}
	p.mu.Lock()
	err := p.control(cmd, time.Now().Round(0), p.since())
	p.mu.Unlock()
	if err != nil {
		return err
	}
	signal(p.wake)
	signal(p.kick)
	return nil
}

func (p *PBX) control(cmd hub.Command, t time.Time, now time.Duration) error {
	switch cmd.Action {
	case hub.ActionOriginate:
		return p.originate(cmd, t, now)
	case hub.ActionAgent:
		return p.agentStatus(cmd, t)
	case hub.ActionConference:
		return fmt.Errorf("sim: conference not supported: %w", hub.ErrUnsupported)
	case hub.ActionAnswer, hub.ActionHangup, hub.ActionHold, hub.ActionResume,
		hub.ActionTransfer, hub.ActionDTMF, hub.ActionTransferComplete, hub.ActionTransferCancel:
	default:
		return fmt.Errorf("sim: action %q: %w", cmd.Action, hub.ErrUnsupported)
	}
	c, err := p.find(cmd)
	if err != nil {
		return err
	}
	switch cmd.Action {
	case hub.ActionAnswer:
		return p.controlAnswer(c, cmd, t, now)
	case hub.ActionHangup:
		if c.phase == phRinging {
			// Someone refused the ringing call (or the agent gave up dialling).
			c.endAs = endRejected
			if c.out {
				c.endAs = endCancelled
			}
		}
		p.end(c, t)
		return nil
	case hub.ActionHold:
		switch c.phase {
		case phActive:
			p.emit(c, t, call.Update{Kind: call.KindHold})
			c.phase = phHeld
			p.controlled(c, now)
			return nil
		case phHeld, phConsulting:
			return p.impossible(c, "is already on hold")
		}
		return p.impossible(c, "cannot be held while "+c.phase.String())
	case hub.ActionResume:
		switch c.phase {
		case phConsulting:
			// The agent gives up the consultation and goes back to the customer.
			p.release(c, c.target, t)
			c.target = -1
			fallthrough
		case phHeld:
			p.emit(c, t, call.Update{Kind: call.KindResume})
			c.phase = phActive
			p.controlled(c, now)
			return nil
		}
		return p.impossible(c, "is not on hold")
	case hub.ActionTransfer:
		return p.controlTransfer(c, cmd, t, now)
	case hub.ActionTransferComplete, hub.ActionTransferCancel:
		if c.phase != phConsulting {
			return p.impossible(c, "has no attended transfer in progress")
		}
		if cmd.Action == hub.ActionTransferCancel {
			// The agent gives up the consultation and goes back to the customer.
			p.release(c, c.target, t)
			c.target = -1
			p.emit(c, t, call.Update{Kind: call.KindResume})
			c.phase = phActive
		} else {
			p.completeAttended(c, t)
		}
		p.controlled(c, now)
		return nil
	case hub.ActionDTMF:
		if c.phase != phActive {
			return p.impossible(c, "takes digits only while connected")
		}
		if !validDigits(cmd.Digits) {
			return fmt.Errorf("sim: invalid DTMF digits %q", cmd.Digits)
		}
		p.emit(c, t, call.Update{Kind: call.KindDTMF, Digits: cmd.Digits})
		p.controlled(c, now)
		return nil
	}
	return nil
}

// find looks a call up by PBX call id, else by callbridge's id. It learns callbridge's
// id of a call the simulator started itself, so later commands may carry only that.
func (p *PBX) find(cmd hub.Command) (*simCall, error) {
	if c, ok := p.calls[cmd.PBXCallID]; ok && cmd.PBXCallID != "" {
		if cmd.CallID != "" && c.callID == "" {
			if _, taken := p.byCallID[cmd.CallID]; !taken {
				c.callID = cmd.CallID
				p.byCallID[cmd.CallID] = c
			}
		}
		return c, nil
	}
	if c, ok := p.byCallID[cmd.CallID]; ok && cmd.CallID != "" {
		return c, nil
	}
	id := cmd.PBXCallID
	if id == "" {
		id = cmd.CallID
	}
	return nil, fmt.Errorf("%w: %q", ErrNoCall, id)
}

func (p *PBX) originate(cmd hub.Command, t time.Time, now time.Duration) error {
	i, ok := p.ext(cmd.Extension)
	if !ok {
		return fmt.Errorf("%w: %q", ErrNoExtension, cmd.Extension)
	}
	if cmd.To == "" {
		return fmt.Errorf("sim: originate from %s: no number to call", cmd.Extension)
	}
	if p.lines[i] != lineFree {
		return fmt.Errorf("%w: %s", ErrBusy, cmd.Extension)
	}
	if _, dup := p.byCallID[cmd.CallID]; dup && cmd.CallID != "" {
		return fmt.Errorf("sim: originate: call %q already exists", cmd.CallID)
	}
	p.begin(spec{flow: FlowClickToCall, ext: i, caller: -1, customer: cmd.To, callID: cmd.CallID, plan: planLong}, t, now)
	return nil
}

func (p *PBX) agentStatus(cmd hub.Command, t time.Time) error {
	i, ok := p.ext(cmd.Extension)
	if !ok {
		return fmt.Errorf("%w: %q", ErrNoExtension, cmd.Extension)
	}
	if cmd.Status == "" {
		return fmt.Errorf("sim: agent status for %s: empty status", cmd.Extension)
	}
	// A paused agent gets no generated calls, as in a queue.
	p.paused[i] = cmd.Status != "available"
	p.out = append(p.out, item{status: &hub.Status{
		PBX: p.id, Type: call.EventAgentStatus, Extension: cmd.Extension, Status: cmd.Status, Time: t,
	}})
	return nil
}

func (p *PBX) controlAnswer(c *simCall, cmd hub.Command, t time.Time, now time.Duration) error {
	switch c.phase {
	case phRinging:
		if c.endAs == endBusy && len(c.held) == 0 {
			return fmt.Errorf("%w: call %s cannot be answered, its extension is in another call", ErrBusy, c.id)
		}
		ext := c.agent
		if cmd.Extension != "" {
			i, ok := p.ext(cmd.Extension)
			if !ok {
				return fmt.Errorf("%w: %q", ErrNoExtension, cmd.Extension)
			}
			if !slices.Contains(c.rung, i) {
				return p.impossible(c, "is not ringing at "+cmd.Extension)
			}
			ext = i
		}
		p.answer(c, ext, t)
	case phTransferring:
		// Only the transfer target's phone rings now; whoever the command names (the
		// hub fills in the call's earlier agent), answering picks up there.
		p.connectTarget(c, t)
	default:
		return p.impossible(c, "is not ringing")
	}
	p.controlled(c, now)
	return nil
}

func (p *PBX) controlTransfer(c *simCall, cmd hub.Command, t time.Time, now time.Duration) error {
	if c.phase != phActive && c.phase != phHeld {
		return p.impossible(c, "cannot be transferred while "+c.phase.String())
	}
	target, ok := p.ext(cmd.To)
	if !ok {
		return fmt.Errorf("%w: transfer target %q", ErrNoExtension, cmd.To)
	}
	if target == c.agent {
		return fmt.Errorf("%w: %s is already on call %s", ErrBusy, cmd.To, c.id)
	}
	if p.lines[target] != lineFree {
		return fmt.Errorf("%w: %s", ErrBusy, cmd.To)
	}
	if c.transfers >= maxTransfers {
		return p.impossible(c, "has been transferred too many times")
	}
	c.plan = planLong
	if cmd.Attended {
		p.consult(c, target, t, now)
	} else {
		p.blind(c, target, t, now)
	}
	return nil
}

// controlled replaces the rest of c's script after a command: talk, then hang up.
func (p *PBX) controlled(c *simCall, now time.Duration) {
	c.plan = planLong
	p.afterTalk(c, now)
}

func (p *PBX) impossible(c *simCall, why string) error {
	return fmt.Errorf("sim: call %s %s: %w", c.id, why, hub.ErrUnsupported)
}

func validDigits(s string) bool {
	if s == "" || len(s) > maxDTMFControl {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch b := s[i]; {
		case b >= '0' && b <= '9', b == '*', b == '#', b >= 'A' && b <= 'D':
		default:
			return false
		}
	}
	return true
}

// String names the phase in error messages.
func (ph phase) String() string {
	switch ph {
	case phRinging:
		return "ringing"
	case phActive:
		return "connected"
	case phHeld:
		return "on hold"
	case phTransferring:
		return "being transferred"
	case phConsulting:
		return "in a consultation"
	}
	return "ended"
}

// Capabilities are the call actions the simulator performs (no conference).
func (p *PBX) Capabilities() []string {
	return []string{call.ActionAnswer, call.ActionHangup, call.ActionHold, call.ActionResume, call.ActionTransfer, call.ActionDTMF}
}
