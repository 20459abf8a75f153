package main

import (
	"context"
	"flag"
	"io"
	"os"
	"strconv"

	"callbridge/internal/config"
	"callbridge/internal/store/sqlite"
)

// commonFlags are the flags every sub-command shares: where the configuration and the
// database are.
type commonFlags struct {
	config, listen, db, sync, simRate string
}

func newFlagSet(name string, stderr io.Writer, c *commonFlags) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.config, "config", "", "YAML configuration file")
	fs.StringVar(&c.listen, "listen", "", "HTTP address (default 127.0.0.1:8080)")
	fs.StringVar(&c.db, "db", "", "SQLite database file (default ./callbridge.db)")
	fs.StringVar(&c.sync, "sync", "", "SQLite durability: normal (survives a crash) or full (survives power loss)")
	fs.StringVar(&c.simRate, "sim-rate", "", "simulated calls per second (simulator PBXs)")
	return fs
}

// parse parses flags and positional arguments in any order ("keys add crm --scope
// user" and "keys add --scope user crm" alike), returning the positional ones.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func (c *commonFlags) load() (config.Config, error) {
	o := config.Overrides{Listen: c.listen, DB: c.db, Sync: c.sync}
	if c.simRate != "" {
		r, err := strconv.ParseFloat(c.simRate, 64)
		if err != nil {
			return config.Config{}, err
		}
		o.SimRate = &r
	}
	return config.Load(c.config, os.Getenv, o)
}

// openStore loads the configuration and opens its database, for the administrative
// sub-commands that work on the store directly.
func (c *commonFlags) openStore(ctx context.Context) (*sqlite.DB, error) {
	cfg, err := c.load()
	if err != nil {
		return nil, err
	}
	return openStore(ctx, cfg)
}
