package hub

import (
	"context"
	"fmt"

	"callbridge/internal/call"
)

// ExtensionStatus returns an extension's last known device status and agent (queue)
// status, as the PBX reported them; empty when unknown.
func (h *Hub) ExtensionStatus(tenant, number string) (status, agent string) {
	info, ok := h.dir.ext(tenant, number)
	if !ok {
		return "", ""
	}
	return info.status, info.agent
}

// SetAgentStatus asks the PBX that owns extension ext of tenant to set its agent
// status (queue pause where the PBX has queues). The extension must be enabled for
// API control.
func (h *Hub) SetAgentStatus(ctx context.Context, tenant, ext, status string) error {
	if ext == "" || status == "" {
		return fmt.Errorf("hub: %s: %w: extension and status are required", ActionAgent, call.ErrInvalid)
	}
	info, ok := h.dir.ext(tenant, ext)
	if !ok {
		return fmt.Errorf("hub: %s: extension %q: %w", ActionAgent, ext, ErrNotFound)
	}
	if !info.apiEnabled {
		return fmt.Errorf("hub: %s: extension %q: %w", ActionAgent, ext, ErrNotEnabled)
	}
	return h.route(ctx, info.pbx, Command{Action: ActionAgent, Extension: ext, Status: status})
}
