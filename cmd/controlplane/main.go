// Command controlplane runs the Brownout controller ("serve") and offers
// operator subcommands that talk to a running controller over its API.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/brownout-io/brownout/internal/buildinfo"
)

const usage = `controlplane — the Brownout graceful-degradation controller

Usage:
  controlplane serve [flags]                      run the controller
  controlplane version                            module version, commit, commit time, Go
  controlplane status [service]                   services, levels, convergence
  controlplane watch SERVICE [--frames N]         follow a service's pushed state frames
  controlplane backup --out FILE                  consistent copy of a running controller's store
  controlplane restore --from FILE [--data DIR]   put a backup in place (controller stopped; new epoch)
  controlplane migrate status [--data DIR|URL]    schema migrations applied and pending
  controlplane emergency on --reason R [--ttl D]  force every service to level 3
  controlplane emergency off                      end emergency mode
  controlplane emergency status                   whether emergency mode is on, since when, by whom, why
  controlplane override set --service S --level L --reason R [--ttl D]
  controlplane override clear ID
  controlplane override list
  controlplane history levels [flags]             level changes and their causes
  controlplane history samples --service S        signals over time
  controlplane history audit [flags]              who changed what
  controlplane service retire NAME                retire a service that stopped reporting (history kept)
  controlplane token create --scope S [--service S] --name N
  controlplane token list
  controlplane token revoke ID
  controlplane webhook create --name N --url U [--format json|slack] [--events T,T]
  controlplane webhook list
  controlplane webhook delete ID
  controlplane deadletter list                    deliveries that ran out of attempts
  controlplane deadletter redrive ID              send a dead letter again

Operator subcommands take --server (CONTROLPLANE_SERVER, default
http://127.0.0.1:8080) and --token (CONTROLPLANE_TOKEN or BROWNOUT_TOKEN).
Run "controlplane COMMAND -h" for a command's flags.
`

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "controlplane:", err)
		}
		os.Exit(exitCode(err))
	}
}

func exitCode(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageError{"no command given"}
	}
	switch args[0] {
	case "serve":
		return serveCmd(args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, buildinfo.Read())
		return nil
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		return cliCmd(args, stdout, stderr)
	}
}
