// Command callbridge is a CTI gateway: it connects telephone exchanges to CRMs and
// gives every CRM one API for call events, call control and call history.
//
// Usage:
//
//	callbridge [serve] [--config FILE] [--listen ADDR] [--db FILE] [--sim-rate N]
//	callbridge tenants add|list|remove [NAME]
//	callbridge keys add|list|remove|replace [CLIENT-ID] [--scope S] [--user U] [--tenant T]
//	callbridge asterisk replay [--config FILE] <ami.raw> [<ami-after-reconnect.raw>]
//	callbridge freeswitch replay [--config FILE] <esl.raw> [<esl-after-reconnect.raw>]
//	callbridge version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "callbridge:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, stdout, stderr)
	case "tenants":
		return tenants(ctx, args, stdout, stderr)
	case "keys":
		return keys(ctx, args, stdout, stderr)
	case "asterisk", "freeswitch":
		return replayTool(ctx, cmd, args, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "callbridge", version)
		return nil
	case "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return fmt.Errorf("unknown command %q\n%s", cmd, usage)
}

const usage = `usage:
  callbridge [serve] [--config FILE] [--listen ADDR] [--db FILE] [--sync normal|full] [--sim-rate N]
  callbridge tenants add|list|remove [NAME]
  callbridge keys add|list|remove|replace [CLIENT-ID] [--scope admin|integration|user] [--user CRM-USER] [--tenant T]
  callbridge asterisk replay [--config FILE] <ami.raw> [<ami-after-reconnect.raw>]
  callbridge freeswitch replay [--config FILE] <esl.raw> [<esl-after-reconnect.raw>]
  callbridge version
Every command takes --config, --db; environment variables CALLBRIDGE_LISTEN, CALLBRIDGE_DB,
CALLBRIDGE_SYNC, CALLBRIDGE_REGION, CALLBRIDGE_LOG_LEVEL, CALLBRIDGE_SIM_RATE override the file.
`
