// Command hallmark is the Hallmark server and client in one binary.
package main

import (
	"context"
	"os"

	"github.com/hallmark-dev/hallmark/internal/cli"
)

func main() {
	os.Exit(cli.Execute(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}
