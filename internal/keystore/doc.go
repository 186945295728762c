// Package keystore keeps the server's private keys (OIDC signing keys, CA,
// CT log and transparency log keys) as PEM files in the data directory: a key
// is generated on first use, written atomically with mode 0600, and loaded
// unchanged on every later start.
package keystore
