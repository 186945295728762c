// Package keystore keeps the server's private keys (registry token, OIDC,
// CA, CT log, transparency log and TUF keys) and the records that belong
// with them behind one small Store interface: Dir, PEM files in the data
// directory (mode 0600, written atomically, never replaced), or Sealed,
// items encrypted with AES-256-GCM under a key encryption key before they
// reach a database table that replicas share. Keys are created once (the
// first of several servers starting together wins, the others read its
// key) and loaded unchanged on every later start.
package keystore
