// Package cli defines the hallmark command line with cobra. Flag and
// environment variable names follow cosign where the concept is the same;
// server flags can also come from HALLMARK_* variables or a YAML file.
package cli
