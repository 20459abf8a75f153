package hub

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"callbridge/internal/call"
	"callbridge/internal/store"
)

// Originate starts a click-to-call: the PBX rings extension from, then dials to. The
// call's id is returned at once and the call keeps it when the PBX reports it.
func (h *Hub) Originate(ctx context.Context, tenant, from, to string) (string, error) {
	if from == "" || to == "" {
		return "", fmt.Errorf("hub: originate: %w: from and to are required", call.ErrInvalid)
	}
	info, ok := h.dir.ext(tenant, from)
	if !ok {
		return "", fmt.Errorf("hub: originate: extension %q: %w", from, ErrNotFound)
	}
	if !info.apiEnabled {
		return "", fmt.Errorf("hub: originate: extension %q: %w", from, ErrNotEnabled)
	}
	id := newID()
	err := h.route(ctx, info.pbx, Command{Action: ActionOriginate, CallID: id, Extension: from, To: to})
	if err != nil {
		return "", err
	}
	return id, nil
}

// Control performs cmd on one of tenant's calls (cmd.CallID), routed to the connector
// that owns it.
func (h *Hub) Control(ctx context.Context, tenant string, cmd Command) error {
	if cmd.Action == ActionOriginate {
		_, err := h.Originate(ctx, tenant, cmd.Extension, cmd.To)
		return err
	}
	c, err := h.st.Call(ctx, tenant, cmd.CallID)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("hub: %s: call %q: %w", cmd.Action, cmd.CallID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("hub: %s: %w", cmd.Action, err)
	}
	if !c.State.Live() {
		return fmt.Errorf("hub: %s: call %q: %w", cmd.Action, cmd.CallID, ErrEnded)
	}
	a := string(cmd.Action)
	if cmd.Action == ActionTransferComplete || cmd.Action == ActionTransferCancel {
		// Completing or cancelling a transfer is part of transferring.
		a = call.ActionTransfer
	}
	if a != string(ActionAgent) && !slices.Contains(c.AllowedActions(), a) {
		return fmt.Errorf("hub: %s: call %q is %s: %w", cmd.Action, cmd.CallID, c.State, ErrNotAllowed)
	}
	ext := actingExtension(c, cmd)
	info, ok := h.dir.ext(tenant, ext)
	if ext == "" || !ok || !info.apiEnabled {
		return fmt.Errorf("hub: %s: extension %q: %w", cmd.Action, ext, ErrNotEnabled)
	}
	cmd.PBXCallID = c.PBXCallID
	if cmd.Extension == "" {
		cmd.Extension = ext
	}
	return h.route(ctx, c.PBX, cmd)
}

// actingExtension is the extension whose permission governs a command on a call: the
// one named in the command, else the one the customer is with, else the first rung.
func actingExtension(c *call.Call, cmd Command) string {
	switch {
	case cmd.Extension != "":
		return cmd.Extension
	case c.Agent != "":
		return c.Agent
	case c.AnsweredBy != "":
		return c.AnsweredBy
	case len(c.Rung) > 0:
		return c.Rung[0]
	case c.Direction == call.DirectionInternal:
		return c.Customer
	}
	return ""
}

func (h *Hub) route(ctx context.Context, pbx string, cmd Command) error {
	conn, ok := h.conns[pbx]
	if !ok {
		h.m.controls.WithLabelValues(string(cmd.Action), "no_connector").Inc()
		return fmt.Errorf("hub: %s: pbx %q: %w", cmd.Action, pbx, ErrNoConnector)
	}
	if err := conn.Control(ctx, cmd); err != nil {
		h.m.controls.WithLabelValues(string(cmd.Action), "error").Inc()
		return fmt.Errorf("hub: %s on pbx %q: %w", cmd.Action, pbx, err)
	}
	h.m.controls.WithLabelValues(string(cmd.Action), "ok").Inc()
	return nil
}

// SetExtensionAPI enables or disables API control of an extension.
func (h *Hub) SetExtensionAPI(ctx context.Context, tenant, number string, enabled bool) error {
	if err := h.st.SetExtensionAPI(ctx, tenant, number, enabled); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("hub: extension %q: %w", number, ErrNotFound)
		}
		return fmt.Errorf("hub: %w", err)
	}
	return h.Reload(ctx)
}

// Reload re-reads extensions and CRM-user mappings after they changed.
func (h *Hub) Reload(ctx context.Context) error {
	if err := h.dir.load(ctx, h.st); err != nil {
		return fmt.Errorf("hub: reload directory: %w", err)
	}
	return nil
}

// ExtensionsOf returns the extensions mapped to a CRM user of tenant.
func (h *Hub) ExtensionsOf(tenant, user string) []string { return h.dir.extensionsOf(tenant, user) }
