// Package config holds the server configuration and how it is read: flags,
// then HALLMARK_* environment variables, then an optional YAML file whose
// keys are the flag names, then the embedded defaults. It also validates the
// result so the server fails at start with a message that says what to fix.
package config
