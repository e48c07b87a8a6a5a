package main

import (
	"errors"
	"io"
)

// cmdExport is being built.
func cmdExport(g *globals, args []string, stdout, stderr io.Writer) error {
	return errors.New("export: not available yet")
}
