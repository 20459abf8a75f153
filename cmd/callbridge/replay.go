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

	"bufio"
	"compress/gzip"

	"callbridge/internal/asterisk"
	"callbridge/internal/config"
	"callbridge/internal/freeswitch"
	"callbridge/internal/hub"
	"callbridge/internal/phone"
	"callbridge/internal/store"
	"callbridge/internal/store/sqlite"
)

// replayer is a connector that plays recordings and says when it is through.
type replayer interface {
	hub.Connector
	Done() <-chan struct{}
	Err() error
}

// replayTool is `callbridge asterisk|freeswitch replay <recording> [<after-reconnect>]`:
// recorded PBX traffic through the real correlator, hub and store, printing the
// calls callbridge makes of it, one JSON object per line, oldest first. --config
// takes the file `serve` does; its first PBX of the kind gives the conventions.
func replayTool(ctx context.Context, kind string, args []string, stdout, stderr io.Writer) error {
	var cf commonFlags
	fs := newFlagSet(kind, stderr, &cf)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) < 2 || pos[0] != "replay" || len(pos) > 3 {
		return fmt.Errorf("usage: callbridge %s replay [--config FILE] <recording> [<recording-after-reconnect>]", kind)
	}
	region := config.Default().Region
	var pbx *config.PBX
	if cf.config != "" {
		cfg, err := cf.load()
		if err != nil {
			return err
		}
		region = cfg.Region
		for i := range cfg.PBX {
			if cfg.PBX[i].Kind == kind {
				pbx = &cfg.PBX[i]
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
		r, err := maybeGunzip(f)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		files = append(files, r)
	}
	var rep replayer
	switch kind {
	case config.KindAsterisk:
		opts := asterisk.Options{PBX: kind}
		if pbx != nil {
			opts = asteriskConfig(*pbx).Correlator
			opts.PBX = pbx.ID
		}
		rep, err = asterisk.NewReplay(opts, files...)
	case config.KindFreeSWITCH:
		opts := freeswitch.Options{PBX: kind}
		if pbx != nil {
			opts = freeswitchConfig(*pbx).Correlator
			opts.PBX = pbx.ID
		}
		rep, err = freeswitch.NewReplay(opts, files...)
	default:
		err = fmt.Errorf("no replay for %q", kind)
	}
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

// maybeGunzip reads a gzipped recording (esl.raw.gz) as its plain bytes.
func maybeGunzip(f io.Reader) (io.Reader, error) {
	br := bufio.NewReaderSize(f, 64<<10)
	if magic, err := br.Peek(2); err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		return gzip.NewReader(br)
	}
	return br, nil
}
