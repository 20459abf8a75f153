package main

import (
	"io"
	"log/slog"
	"testing"

	"callbridge/internal/config"
	"callbridge/internal/hub"
)

// TestConnectorsFromConfig: every PBX kind of configuration becomes its connector,
// with the id and tenant it was given.
func TestConnectorsFromConfig(t *testing.T) {
	cfg := config.Default()
	cfg.PBX = []config.PBX{
		{ID: "sim", Kind: config.KindSim, Extensions: 4},
		{ID: "ast", Kind: config.KindAsterisk, Address: "127.0.0.1:5038", Username: "cti", Secret: "s"},
		{ID: "fs", Kind: config.KindFreeSWITCH, Address: "127.0.0.1:8021", Password: "p", Tenant: "acme",
			Dialplan: config.Dialplan{ExternalContexts: []string{"public"}, Gateways: []string{"carrier"}}},
	}
	conns, tenants, err := connectors(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]string{}
	for _, c := range conns {
		k, _ := c.(hub.Kinded)
		if k != nil {
			kinds[c.ID()] = k.Kind()
		}
	}
	if kinds["ast"] != "asterisk" || kinds["fs"] != "freeswitch" || len(conns) != 3 {
		t.Fatalf("connectors %v", kinds)
	}
	if tenants["fs"] != "acme" {
		t.Fatalf("tenants %v", tenants)
	}
	// A FreeSWITCH's dialplan conventions are compiled: a bad one is refused at start.
	cfg.PBX[2].Dialplan.InternalPattern = "("
	if _, _, err := connectors(cfg, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil {
		t.Fatal("a bad internal pattern was accepted")
	}
}
