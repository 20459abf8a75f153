package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"callbridge/internal/api"
	"callbridge/internal/asterisk"
	"callbridge/internal/auth"
	"callbridge/internal/config"
	"callbridge/internal/freeswitch"
	"callbridge/internal/hub"
	"callbridge/internal/phone"
	"callbridge/internal/sim"
	"callbridge/internal/store"
	"callbridge/internal/store/sqlite"
	"callbridge/internal/tlsutil"
)

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cf commonFlags
	fs := newFlagSet("serve", stderr, &cf)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := cf.load()
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.LogLevel)

	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()

	keys := &auth.Manager{Store: st}
	if key, created, err := keys.EnsureAdmin(ctx); err != nil {
		return err
	} else if created {
		scheme := "http"
		if cfg.TLS.Enabled() {
			scheme = "https"
		}
		fmt.Fprintf(stdout, "callbridge: created admin key (shown once, keep it): %s\n", key)
		fmt.Fprintf(stdout, "  try: curl -H \"Authorization: Bearer %s\" %s://%s/api/v1/calls\n", key, scheme, cfg.Listen)
	}
	for _, p := range cfg.PBX {
		if p.Tenant != "" && p.Tenant != store.DefaultTenant {
			if err := ensureTenant(ctx, st, p.Tenant); err != nil {
				return err
			}
		}
	}

	norm, err := phone.NewNormalizer(cfg.Region)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	conns, tenantOf, err := connectors(cfg, log)
	if err != nil {
		return err
	}
	h, err := hub.New(hub.Config{Store: st, Logger: log, Phone: norm, Connectors: conns, Tenants: tenantOf, Metrics: hub.NewMetrics(reg)})
	if err != nil {
		return err
	}
	// HTTPS: a configured certificate, or a self-signed one generated at first start
	// next to the database and kept; "/" then tells the user who opened it to accept
	// the certificate that they can return to their CRM.
	var tlsConfig *tls.Config
	certPath, keyPath := cfg.TLS.Paths(cfg.DB)
	switch cfg.TLS.Mode {
	case config.TLSFile:
		cert, err := tls.LoadX509KeyPair(certPath, keyPath)
		if err != nil {
			return fmt.Errorf("tls: %w", err)
		}
		tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	case config.TLSSelfSigned:
		cert, err := tlsutil.EnsureSelfSigned(certPath, keyPath, tlsutil.Hosts(cfg.Listen))
		if err != nil {
			return err
		}
		tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	var plainLn net.Listener
	if cfg.TLS.HTTPListen != "" {
		if plainLn, err = net.Listen("tcp", cfg.TLS.HTTPListen); err != nil {
			ln.Close()
			return fmt.Errorf("listen (plain HTTP): %w", err)
		}
	}
	running := make(chan struct{})
	handler, err := api.New(api.Config{
		Hub: h, Auth: auth.NewAuthenticator(st, 5*time.Second), Logger: log, Gatherer: reg, Registerer: reg,
		Phone: norm, Version: version, CORS: api.CORS{Origins: cfg.CORS.Origins, MaxAge: cfg.CORS.MaxAge},
		Recordings:    api.Recordings{Dir: cfg.Recordings.Dir, LinkSecret: []byte(cfg.Recordings.LinkSecret)},
		WSTokenSecret: []byte(cfg.WSTokenSecret),
		Ready: func(ctx context.Context) error {
			select {
			case <-running:
			default:
				return errors.New("hub not running")
			}
			return st.Ping(ctx)
		},
	})
	if err != nil {
		ln.Close()
		if plainLn != nil {
			plainLn.Close()
		}
		return err
	}
	if cfg.TLS.Mode == config.TLSSelfSigned {
		handler = tlsutil.AcceptedPage(handler)
	}
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	// Plain HTTP beside HTTPS: a redirect to the TLS port, or a refusal.
	var plainSrv *http.Server
	if plainLn != nil {
		_, tlsPort, _ := net.SplitHostPort(ln.Addr().String())
		plain := tlsutil.Refuse()
		if cfg.TLS.HTTP == config.HTTPRedirect {
			plain = tlsutil.Redirect(tlsPort)
		}
		plainSrv = &http.Server{Handler: plain, ReadHeaderTimeout: 10 * time.Second, ErrorLog: srv.ErrorLog}
	}

	hubCtx, stopHub := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Add(1)
	hubErr := make(chan error, 1)
	go func() {
		defer wg.Done()
		hubErr <- h.Run(hubCtx)
	}()
	close(running)
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server", "err", err)
		}
	}()
	if plainSrv != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := plainSrv.Serve(plainLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("plain http server", "err", err)
			}
		}()
		log.Info("plain HTTP", "listen", plainLn.Addr().String(), "http", cfg.TLS.HTTP)
	}
	log.Info("callbridge serving", "listen", ln.Addr().String(), "tls", cfg.TLS.Mode, "db", cfg.DB, "pbx", len(cfg.PBX), "version", version)

	<-ctx.Done()
	log.Info("stopping")
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutCtx)
	if plainSrv != nil {
		_ = plainSrv.Shutdown(shutCtx)
	}
	stopHub()
	wg.Wait()
	return <-hubErr
}

func openStore(ctx context.Context, cfg config.Config) (*sqlite.DB, error) {
	return sqlite.Open(ctx, cfg.DB, sqlite.Options{Sync: sqlite.Sync(cfg.Sync)})
}

func ensureTenant(ctx context.Context, st store.Store, name string) error {
	err := st.AddTenant(ctx, name)
	if err != nil && !errors.Is(err, store.ErrExists) {
		return err
	}
	return nil
}

// connectors builds one connector per configured PBX.
func connectors(cfg config.Config, log *slog.Logger) ([]hub.Connector, map[string]string, error) {
	var out []hub.Connector
	tenants := map[string]string{}
	for _, p := range cfg.PBX {
		if p.Tenant != "" {
			tenants[p.ID] = p.Tenant
		}
		switch p.Kind {
		case config.KindSim:
			rate := 0.0
			if p.Rate != nil {
				rate = *p.Rate
			}
			s, err := sim.New(sim.Config{ID: p.ID, Extensions: p.Extensions, Rate: rate, Seed: p.Seed}, log)
			if err != nil {
				return nil, nil, err
			}
			out = append(out, s)
		case config.KindAsterisk:
			a, err := asterisk.NewConnector(asteriskConfig(p), log)
			if err != nil {
				return nil, nil, err
			}
			out = append(out, a)
		case config.KindFreeSWITCH:
			f, err := freeswitch.NewConnector(freeswitchConfig(p), log)
			if err != nil {
				return nil, nil, err
			}
			out = append(out, f)
		default:
			return nil, nil, fmt.Errorf("pbx %s: kind %q not supported", p.ID, p.Kind)
		}
	}
	return out, tenants, nil
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

// asteriskConfig maps a PBX's configuration onto the Asterisk connector's.
func asteriskConfig(p config.PBX) asterisk.Config {
	c := asterisk.Config{
		ID:      p.ID,
		Address: p.Address,
		Login:   asterisk.Login{Username: p.Username, Secret: string(p.Secret), MD5: p.MD5, Events: p.Events},
		Correlator: asterisk.Options{
			InternalContexts: p.Dialplan.InternalContexts,
			ExternalContexts: p.Dialplan.ExternalContexts,
			TrunkEndpoints:   p.Dialplan.Trunks,
			InternalPattern:  p.Dialplan.InternalPattern,
		},
		ExtensionChannel:  p.Dialplan.ExtensionChannel,
		OutboundContext:   p.Dialplan.OutboundContext,
		TransferContext:   p.Dialplan.TransferContext,
		ConferenceContext: p.Dialplan.ConferenceContext,
		Members:           p.Members,
	}
	if p.TLS {
		// The operator's choice for a lab PBX with a self-signed certificate.
		c.TLS = &tls.Config{InsecureSkipVerify: p.TLSInsecure} //nolint:gosec
	}
	return c
}

// freeswitchConfig maps a PBX's configuration onto the FreeSWITCH connector's.
func freeswitchConfig(p config.PBX) freeswitch.Config {
	c := freeswitch.Config{
		ID:      p.ID,
		Address: p.Address,
		Login:   freeswitch.Login{Password: string(p.Password), Events: p.Events},
		Correlator: freeswitch.Options{
			InternalContexts: p.Dialplan.InternalContexts,
			ExternalContexts: p.Dialplan.ExternalContexts,
			Gateways:         p.Dialplan.Gateways,
			InternalPattern:  p.Dialplan.InternalPattern,
		},
		ExtensionChannel:  p.Dialplan.ExtensionChannel,
		OutboundContext:   p.Dialplan.OutboundContext,
		TransferContext:   p.Dialplan.TransferContext,
		ConferenceProfile: p.Dialplan.ConferenceProfile,
		AgentName:         p.Dialplan.AgentName,
		Members:           p.Members,
	}
	if p.TLS {
		// The operator's choice for a lab PBX with a self-signed certificate.
		c.TLS = &tls.Config{InsecureSkipVerify: p.TLSInsecure} //nolint:gosec
	}
	return c
}
