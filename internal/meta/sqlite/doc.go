// Package sqlite is the embedded metadata database driver: one SQLite file
// in WAL mode with synchronous=FULL, so a committed write survives a crash.
// Writes go through a single connection; reads use a pool of connections.
package sqlite
