// Package sqlite is the embedded metadata database driver: one SQLite file
// in WAL mode with synchronous=FULL, so a committed write survives a crash.
// Writes go through a single connection; reads use a pool of connections.
// The store itself (SQL, migrations, the log's storage) is meta/sqlstore;
// this package opens the file and supplies SQLite's dialect.
package sqlite
