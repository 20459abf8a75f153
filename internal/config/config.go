// Package config is callbridge's one typed configuration: defaults, then a YAML file,
// then CALLBRIDGE_* environment variables, then command-line flags; validated once at
// start.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Config is the whole configuration.
type Config struct {
	// Listen is the HTTP address (CALLBRIDGE_LISTEN, --listen).
	Listen string `yaml:"listen"`
	// DB is the SQLite file (CALLBRIDGE_DB, --db).
	DB string `yaml:"db"`
	// Sync is SQLite's durability: "normal" survives a process crash, "full" also
	// power loss (CALLBRIDGE_SYNC, --sync).
	Sync string `yaml:"sync"`
	// Region is the default country for phone numbers without one (ISO 3166, RU).
	Region string `yaml:"region"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `yaml:"log_level"`
	// PBX lists the PBX connections.
	PBX []PBX `yaml:"pbx"`
	// CORS lets pages of other origins (CRM widgets, the panel) call the API.
	CORS CORS `yaml:"cors"`
	// TLS serves the API over HTTPS.
	TLS TLS `yaml:"tls"`
	// Recordings says where recording files are served from.
	Recordings Recordings `yaml:"recordings"`
	// WSTokenSecret signs the WebSocket tokens browsers connect with; empty: a random
	// secret per process, so a token works only on the node that issued it and not
	// across a restart. Nodes behind one load balancer need one shared secret.
	WSTokenSecret Secret `yaml:"ws_token_secret"`
}

// CORS is the cross-origin policy of the API.
type CORS struct {
	// Origins are the allowed origins ("https://crm.example.com"); "*" allows any
	// (CALLBRIDGE_CORS_ORIGINS, comma-separated). Empty: no cross-origin access.
	Origins []string `yaml:"origins"`
	// MaxAge is how long, in seconds, a browser may cache a preflight answer.
	MaxAge int `yaml:"max_age"`
}

// TLS modes.
const (
	TLSOff        = "off"
	TLSFile       = "file"
	TLSSelfSigned = "self-signed"
)

// What the plain-HTTP listener does when TLS is on.
const (
	HTTPRedirect = "redirect"
	HTTPRefuse   = "refuse"
)

// TLS is how callbridge serves HTTPS.
type TLS struct {
	// Mode is off (plain HTTP), file (Cert and Key) or self-signed (generated at
	// first start next to the database, then reused).
	Mode string `yaml:"mode"`
	// Cert and Key are PEM files; with self-signed they override where the generated
	// pair is kept (default: <db>.tls.crt and <db>.tls.key).
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	// HTTP is what plain HTTP on HTTPListen does: redirect (308 to https) or refuse (403).
	HTTP string `yaml:"http"`
	// HTTPListen is the plain-HTTP address (empty: none).
	HTTPListen string `yaml:"http_listen"`
}

// Enabled reports whether callbridge serves HTTPS.
func (t TLS) Enabled() bool { return t.Mode == TLSFile || t.Mode == TLSSelfSigned }

// Paths returns the certificate and key files: the configured ones, or for a
// self-signed pair without them, files next to the database db.
func (t TLS) Paths(db string) (cert, key string) {
	cert, key = t.Cert, t.Key
	if t.Mode == TLSSelfSigned {
		if cert == "" {
			cert = db + ".tls.crt"
		}
		if key == "" {
			key = db + ".tls.key"
		}
	}
	return cert, key
}

// PBX is one PBX connection.
type PBX struct {
	ID   string `yaml:"id"`
	Kind string `yaml:"kind"`
	// Tenant owns the PBX's calls and extensions (empty: the default tenant).
	Tenant string `yaml:"tenant"`
	// Extensions is the simulator's number of extensions (1–10,000).
	Extensions int `yaml:"extensions"`
	// Rate is the simulator's new calls per second (--sim-rate overrides it).
	Rate *float64 `yaml:"rate"`
	// Seed makes the simulator repeatable (0: random).
	Seed int64 `yaml:"seed"`

	// Address is the PBX's manager interface, host:port (Asterisk AMI: 5038,
	// FreeSWITCH event socket: 8021).
	Address string `yaml:"address"`
	// Password logs in to FreeSWITCH's event socket (event_socket.conf.xml).
	Password Secret `yaml:"password"`
	// Username and Secret log in to the manager interface.
	Username string `yaml:"username"`
	Secret   Secret `yaml:"secret"`
	// MD5 logs in with a challenge, so the secret never crosses the wire.
	MD5 bool `yaml:"md5"`
	// Events is the event classes to receive (AMI Login's Events: "on", or a list
	// such as "call,agent,cdr,dialplan"; FreeSWITCH's event command: "plain ALL",
	// "json ALL"): a filter on a busy PBX.
	Events string `yaml:"events"`
	// TLS connects with TLS; TLSInsecure skips certificate verification (a lab PBX
	// with a self-signed certificate).
	TLS         bool `yaml:"tls"`
	TLSInsecure bool `yaml:"tls_insecure"`

	// Dialplan conventions of the PBX, from which calls get their direction.
	Dialplan Dialplan `yaml:"dialplan"`
	// Members lists the PBX's extensions when the PBX cannot list them itself.
	Members []string `yaml:"members"`
}

// Dialplan describes how a PBX is wired, so callbridge can tell internal phones from
// the outside world and knows how to reach an extension and dial out.
type Dialplan struct {
	// InternalContexts are contexts whose channels are internal phones.
	InternalContexts []string `yaml:"internal_contexts"`
	// ExternalContexts are contexts where calls from outside arrive.
	ExternalContexts []string `yaml:"external_contexts"`
	// Trunks are channel prefixes of trunks ("PJSIP/trunk").
	Trunks []string `yaml:"trunks"`
	// Gateways are FreeSWITCH sofia gateways that are trunks: their channels
	// (sofia/gateway/NAME/…) are the outside world.
	Gateways []string `yaml:"gateways"`
	// InternalPattern matches internal numbers (default: 2 to 5 digits).
	InternalPattern string `yaml:"internal_pattern"`
	// ExtensionChannel reaches an extension: "PJSIP/{ext}", "Local/{ext}@phones",
	// FreeSWITCH "user/{ext}" (the default there).
	ExtensionChannel string `yaml:"extension_channel"`
	// OutboundContext is where a click-to-call dials the customer.
	OutboundContext string `yaml:"outbound_context"`
	// TransferContext is where transfers dial their target (default: OutboundContext).
	TransferContext string `yaml:"transfer_context"`
	// ConferenceContext is where a conference room number is dialled (ConfBridge).
	ConferenceContext string `yaml:"conference_context"`
	// ConferenceProfile is the mod_conference profile of the rooms callbridge opens
	// on FreeSWITCH (default "default").
	ConferenceProfile string `yaml:"conference_profile"`
	// AgentName is an extension's mod_callcenter agent name on FreeSWITCH
	// (default "{ext}@default").
	AgentName string `yaml:"agent_name"`
}

// Secret is a configuration value that must never be printed.
type Secret string

// String hides the secret in logs and error messages.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "***"
}

// GoString hides the secret from %#v too.
func (s Secret) GoString() string { return s.String() }

// Kinds of PBX this build can connect to.
const (
	KindSim        = "sim"
	KindAsterisk   = "asterisk"
	KindFreeSWITCH = "freeswitch"
)

// DefaultSimRate is the simulator's pace when nothing sets one: a call every two
// seconds on 8 extensions, so a bare start shows ended and live calls within seconds.
const DefaultSimRate = 0.5

// Default returns the configuration callbridge runs with when given none.
func Default() Config {
	return Config{
		Listen:   "127.0.0.1:8080",
		DB:       "./callbridge.db",
		Sync:     "normal",
		Region:   "RU",
		LogLevel: "info",
		CORS:     CORS{MaxAge: 600},
		TLS:      TLS{Mode: TLSOff, HTTP: HTTPRedirect},
	}
}

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("config: invalid")

// Overrides are the values given by flags; nil/empty means "not given".
type Overrides struct {
	Listen  string
	DB      string
	Sync    string
	SimRate *float64
}

// Load builds the configuration: defaults, the YAML file at path (if path is not
// empty), environment (getenv, normally os.Getenv), then flags.
func Load(path string, getenv func(string) string, o Overrides) (Config, error) {
	cfg := Default()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return Config{}, fmt.Errorf("config: %w", err)
		}
		if err := decode(b, &cfg); err != nil {
			return Config{}, fmt.Errorf("config: %s: %w", path, err)
		}
	}
	simRate := o.SimRate
	for _, e := range []struct {
		name string
		dst  *string
	}{
		{"CALLBRIDGE_LISTEN", &cfg.Listen},
		{"CALLBRIDGE_DB", &cfg.DB},
		{"CALLBRIDGE_SYNC", &cfg.Sync},
		{"CALLBRIDGE_REGION", &cfg.Region},
		{"CALLBRIDGE_LOG_LEVEL", &cfg.LogLevel},
	} {
		if v := getenv(e.name); v != "" {
			*e.dst = v
		}
	}
	if v := getenv("CALLBRIDGE_CORS_ORIGINS"); v != "" {
		cfg.CORS.Origins = nil
		for _, o := range strings.Split(v, ",") {
			if o = strings.TrimSpace(o); o != "" {
				cfg.CORS.Origins = append(cfg.CORS.Origins, o)
			}
		}
	}
	if v := getenv("CALLBRIDGE_SIM_RATE"); v != "" && simRate == nil {
		r, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return Config{}, fmt.Errorf("%w: CALLBRIDGE_SIM_RATE %q is not a number", ErrInvalid, v)
		}
		simRate = &r
	}
	if o.Listen != "" {
		cfg.Listen = o.Listen
	}
	if o.DB != "" {
		cfg.DB = o.DB
	}
	if o.Sync != "" {
		cfg.Sync = o.Sync
	}
	if len(cfg.PBX) == 0 {
		cfg.PBX = []PBX{{ID: "sim", Kind: KindSim, Extensions: 8}}
	}
	for i := range cfg.PBX {
		p := &cfg.PBX[i]
		if p.Kind != KindSim {
			continue
		}
		if simRate != nil {
			r := *simRate
			p.Rate = &r
		}
		if p.Rate == nil {
			r := DefaultSimRate
			p.Rate = &r
		}
		if p.Extensions == 0 {
			p.Extensions = 8
		}
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// decode reads YAML strictly: an unknown key is a typo the user must hear about.
func decode(b []byte, cfg *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return nil
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Validate checks the configuration and says what is wrong, all at once.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...))
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen %q: %v", c.Listen, err)
	}
	if strings.TrimSpace(c.DB) == "" {
		bad("db: empty path")
	}
	if c.Sync != "normal" && c.Sync != "full" {
		bad("sync %q: want normal or full", c.Sync)
	}
	if len(c.Region) != 2 {
		bad("region %q: want a two-letter country code", c.Region)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log_level %q: want debug, info, warn or error", c.LogLevel)
	}
	c.validateCORS(bad)
	c.validateTLS(bad)
	if d := c.Recordings.Dir; d != "" {
		if st, err := os.Stat(d); err != nil || !st.IsDir() {
			bad("recordings.dir %q: not a directory", d)
		}
	}
	if n := len(c.Recordings.LinkSecret); n > 0 && n < 16 {
		bad("recordings.link_secret: at least 16 characters")
	}
	if n := len(c.WSTokenSecret); n > 0 && n < 16 {
		bad("ws_token_secret: at least 16 characters")
	}
	seen := map[string]bool{}
	for i, p := range c.PBX {
		if !idPattern.MatchString(p.ID) {
			bad("pbx[%d]: id %q: 1-64 letters, digits, '.', '_' or '-'", i, p.ID)
		}
		if seen[p.ID] {
			bad("pbx[%d]: id %q used twice", i, p.ID)
		}
		seen[p.ID] = true
		if p.Tenant != "" && !idPattern.MatchString(p.Tenant) {
			bad("pbx[%d]: tenant %q: 1-64 letters, digits, '.', '_' or '-'", i, p.Tenant)
		}
		switch p.Kind {
		case KindSim:
			if p.Extensions < 1 || p.Extensions > 10000 {
				bad("pbx[%d] %s: extensions %d: want 1 to 10000", i, p.ID, p.Extensions)
			}
			if p.Rate != nil && (*p.Rate < 0 || *p.Rate > 5000) {
				bad("pbx[%d] %s: rate %g: want 0 to 5000 calls/s", i, p.ID, *p.Rate)
			}
		case KindAsterisk:
			if _, _, err := net.SplitHostPort(p.Address); err != nil {
				bad("pbx[%d] %s: address %q: want host:port (AMI listens on 5038)", i, p.ID, p.Address)
			}
			if p.Username == "" {
				bad("pbx[%d] %s: username is required", i, p.ID)
			}
			p.validateDialplan(i, bad)
		case KindFreeSWITCH:
			if _, _, err := net.SplitHostPort(p.Address); err != nil {
				bad("pbx[%d] %s: address %q: want host:port (the event socket listens on 8021)", i, p.ID, p.Address)
			}
			if p.Password == "" {
				bad("pbx[%d] %s: password is required (event_socket.conf.xml)", i, p.ID)
			}
			p.validateDialplan(i, bad)
		case "":
			bad("pbx[%d] %s: kind is required", i, p.ID)
		default:
			bad("pbx[%d] %s: kind %q is not supported by this build (supported: sim, asterisk, freeswitch)", i, p.ID, p.Kind)
		}
	}
	return errors.Join(errs...)
}

// validateDialplan checks the dialplan conventions a PBX connector compiles.
func (p *PBX) validateDialplan(i int, bad func(string, ...any)) {
	if p.Dialplan.InternalPattern != "" {
		if _, err := regexp.Compile(p.Dialplan.InternalPattern); err != nil {
			bad("pbx[%d] %s: dialplan.internal_pattern: %v", i, p.ID, err)
		}
	}
	if ch := p.Dialplan.ExtensionChannel; ch != "" && !strings.Contains(ch, "{ext}") {
		bad("pbx[%d] %s: dialplan.extension_channel %q must contain {ext}", i, p.ID, ch)
	}
}

func (c *Config) validateCORS(bad func(string, ...any)) {
	for _, o := range c.CORS.Origins {
		if o == "*" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			bad("cors.origins: %q: want scheme://host[:port] (such as https://crm.example.com) or *", o)
		}
	}
	if c.CORS.MaxAge < 0 || c.CORS.MaxAge > 86400 {
		bad("cors.max_age %d: want 0 to 86400 seconds", c.CORS.MaxAge)
	}
}

func (c *Config) validateTLS(bad func(string, ...any)) {
	t := c.TLS
	switch t.Mode {
	case TLSOff:
		if t.HTTPListen != "" {
			bad("tls.http_listen %q: only with tls.mode file or self-signed (listen already serves plain HTTP)", t.HTTPListen)
		}
	case TLSFile:
		if t.Cert == "" || t.Key == "" {
			bad("tls: mode file needs cert and key")
		}
		for _, f := range []struct{ name, path string }{{"cert", t.Cert}, {"key", t.Key}} {
			if f.path == "" {
				continue
			}
			if fh, err := os.Open(f.path); err != nil {
				bad("tls.%s: %v", f.name, err)
			} else {
				fh.Close()
			}
		}
	case TLSSelfSigned:
		if (t.Cert == "") != (t.Key == "") {
			bad("tls: mode self-signed takes both cert and key paths, or neither")
		}
	default:
		bad("tls.mode %q: want off, file or self-signed", t.Mode)
	}
	if t.HTTP != HTTPRedirect && t.HTTP != HTTPRefuse {
		bad("tls.http %q: want redirect or refuse", t.HTTP)
	}
	if t.HTTPListen != "" {
		if _, _, err := net.SplitHostPort(t.HTTPListen); err != nil {
			bad("tls.http_listen %q: %v", t.HTTPListen, err)
		} else if t.HTTPListen == c.Listen {
			bad("tls.http_listen %q: the same address as listen", t.HTTPListen)
		}
	}
}

// Recordings configures how call recordings are served.
type Recordings struct {
	// Dir is the directory recording files may be served from (a PBX's spool shared
	// with this machine); files outside it are never served.
	Dir string `yaml:"dir"`
	// LinkSecret signs recording links; empty: a random secret per process, so links
	// do not survive a restart. Several nodes need one shared secret.
	LinkSecret Secret `yaml:"link_secret"`
}
