package cli

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/term"
)

func encodeB64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// readPassword returns the key password as cosign finds it: COSIGN_PASSWORD
// (may be empty), else a prompt on a terminal (twice when confirm), else all
// of standard input.
func readPassword(confirm bool) ([]byte, error) {
	if pw, ok := os.LookupEnv("COSIGN_PASSWORD"); ok {
		return []byte(pw), nil
	}
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		b, err := io.ReadAll(os.Stdin)
		if err != nil {
			return nil, fmt.Errorf("reading the key password from standard input: %w", err)
		}
		return b, nil
	}
	fmt.Fprint(os.Stderr, "Enter password for private key: ")
	pw, err := term.ReadPassword(fd)
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return nil, err
	}
	if confirm {
		fmt.Fprint(os.Stderr, "Enter password for private key again: ")
		again, err := term.ReadPassword(fd)
		fmt.Fprintln(os.Stderr)
		if err != nil {
			return nil, err
		}
		if string(again) != string(pw) {
			return nil, errors.New("passwords do not match")
		}
	}
	return pw, nil
}
