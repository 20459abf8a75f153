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

	// Address is the PBX's manager interface, host:port (Asterisk AMI: 5038).
	Address string `yaml:"address"`
	// Username and Secret log in to the manager interface.
	Username string `yaml:"username"`
	Secret   Secret `yaml:"secret"`
	// MD5 logs in with a challenge, so the secret never crosses the wire.
	MD5 bool `yaml:"md5"`
	// Events is the event classes to receive (AMI Login's Events: "on", or a list
	// such as "call,agent,cdr,dialplan"): a filter on a busy PBX.
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
	// InternalPattern matches internal numbers (default: 2 to 5 digits).
	InternalPattern string `yaml:"internal_pattern"`
	// ExtensionChannel reaches an extension: "PJSIP/{ext}", "Local/{ext}@phones".
	ExtensionChannel string `yaml:"extension_channel"`
	// OutboundContext is where a click-to-call dials the customer.
	OutboundContext string `yaml:"outbound_context"`
	// TransferContext is where transfers dial their target (default: OutboundContext).
	TransferContext string `yaml:"transfer_context"`
	// ConferenceContext is where a conference room number is dialled (ConfBridge).
	ConferenceContext string `yaml:"conference_context"`
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
	KindSim      = "sim"
	KindAsterisk = "asterisk"
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
			if p.Dialplan.InternalPattern != "" {
				if _, err := regexp.Compile(p.Dialplan.InternalPattern); err != nil {
					bad("pbx[%d] %s: dialplan.internal_pattern: %v", i, p.ID, err)
				}
			}
			if ch := p.Dialplan.ExtensionChannel; ch != "" && !strings.Contains(ch, "{ext}") {
				bad("pbx[%d] %s: dialplan.extension_channel %q must contain {ext}", i, p.ID, ch)
			}
		case "":
			bad("pbx[%d] %s: kind is required", i, p.ID)
		default:
			bad("pbx[%d] %s: kind %q is not supported by this build (supported: sim, asterisk)", i, p.ID, p.Kind)
		}
	}
	return errors.Join(errs...)
}
