// Package backup writes and restores backups of the embedded default
// deployment (a data dir with the SQLite database and filesystem blobs):
// one tar stream holding a consistent snapshot of the database taken
// while the server runs, the blobs that snapshot names (copied after it:
// garbage collection's grace period keeps them) and the keys, trust and
// TUF files. Restore checks every blob against its digest and every other
// file against the archive's manifest before the data dir is replaced.
package backup
