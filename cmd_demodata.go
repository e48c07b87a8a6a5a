package main

import (
	"errors"
	"io"
)

// cmdDemoData is being built.
func cmdDemoData(g *globals, args []string, stdout, stderr io.Writer) error {
	return errors.New("demo-data: not available yet")
}
