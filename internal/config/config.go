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
}

// Kinds of PBX this build can connect to.
const (
	KindSim = "sim"
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
		case "":
			bad("pbx[%d] %s: kind is required", i, p.ID)
		default:
			bad("pbx[%d] %s: kind %q is not supported by this build (supported: sim)", i, p.ID, p.Kind)
		}
	}
	return errors.Join(errs...)
}
