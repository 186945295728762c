// Package metatest is the contract test suite of the metadata database:
// registry metadata, signature index, auth store, audit log, migrations and
// the transparency log's storage. Every driver's tests call Run with a
// Backend, so the same cases run unchanged against SQLite and PostgreSQL.
// It is imported only from _test.go files.
package metatest
