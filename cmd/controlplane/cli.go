package main

import (
	"io"
)

func cliCmd(args []string, stdout, stderr io.Writer) error {
	return usageError{"unknown command " + args[0]}
}
