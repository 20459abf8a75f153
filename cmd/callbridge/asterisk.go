package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

	"callbridge/internal/asterisk"
	"callbridge/internal/config"
	"callbridge/internal/hub"
	"callbridge/internal/phone"
	"callbridge/internal/store"
	"callbridge/internal/store/sqlite"
)

// asteriskTool is `callbridge asterisk replay <ami.raw> [<ami-after-reconnect.raw>]`:
// recorded AMI bytes through the real correlator, hub and store, printing the calls
// callbridge makes of them, one JSON object per line, oldest first.
func asteriskTool(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cf commonFlags
	fs := newFlagSet("asterisk", stderr, &cf)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) < 2 || pos[0] != "replay" || len(pos) > 3 {
		return fmt.Errorf("usage: callbridge asterisk replay [--config FILE] <ami.raw> [<ami-after-reconnect.raw>]")
	}
	opts := asterisk.Options{PBX: "asterisk"}
	region := config.Default().Region
	if cf.config != "" {
		cfg, err := cf.load()
		if err != nil {
			return err
		}
		region = cfg.Region
		for _, p := range cfg.PBX {
			if p.Kind == config.KindAsterisk {
				opts = asteriskConfig(p).Correlator
				opts.PBX = p.ID
				break
			}
		}
	}
	var files []io.Reader
	for _, path := range pos[1:] {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		files = append(files, f)
	}
	rep, err := asterisk.NewReplay(opts, files...)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "callbridge-replay")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	st, err := sqlite.Open(ctx, filepath.Join(dir, "replay.db"), sqlite.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	norm, err := phone.NewNormalizer(region)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	h, err := hub.New(hub.Config{Store: st, Logger: log, Phone: norm, Connectors: []hub.Connector{rep}})
	if err != nil {
		return err
	}
	hctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- h.Run(hctx) }()
	select {
	case <-rep.Done():
	case <-ctx.Done():
	}
	// Stopping the hub applies and commits everything the replay handed it.
	stop()
	if err := <-done; err != nil {
		return err
	}
	if err := rep.Err(); err != nil {
		return err
	}
	var calls []json.RawMessage
	f := store.CallFilter{Tenant: store.DefaultTenant, Limit: 1000}
	for {
		page, err := st.Calls(ctx, f)
		if err != nil {
			return err
		}
		for _, c := range page.Calls {
			b, err := json.Marshal(c)
			if err != nil {
				return err
			}
			calls = append(calls, b)
		}
		if page.Next == "" {
			break
		}
		f.Cursor = page.Next
	}
	slices.Reverse(calls)
	for _, c := range calls {
		fmt.Fprintf(stdout, "%s\n", c)
	}
	return nil
}
