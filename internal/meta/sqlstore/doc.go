// Package sqlstore is the one implementation of the metadata database
// (meta.Store), the auth store and the transparency log's storage over
// database/sql, shared by the SQLite and PostgreSQL drivers (meta/sqlite,
// meta/postgres), which differ only in a small Dialect: placeholder style,
// the {{id}}/{{intkey}}/{{bytes}}/{{bytewise}} column types of migrations,
// how the log's sequencing transaction locks the tree head, and which
// errors mean "retry" or "database unavailable".
//
// Why database/sql for both: the statements are portable (ON CONFLICT,
// RETURNING, BIGINT/TEXT), so one copy of the SQL serves both databases and
// one contract suite (meta/metatest) checks both. PostgreSQL is reached
// through pgx's database/sql adapter; pgx's native pool would only pay for
// COPY of very large log batches, and the log already writes a batch of 512
// entries in a handful of multi-row INSERTs in one transaction.
//
// Migrations (schema.go) are versioned, embedded, and applied by Migrate
// when a driver opens the database: each in its own transaction that takes
// the dialect's migration lock (PostgreSQL advisory lock, SQLite write
// lock), so several replicas may start at once. A new table is one entry
// appended to the list, written once with the type tokens; both dialects
// run it, and the contract suite runs against both. Only where the SQL must
// differ does an entry carry a dialect's own text (Migration.ByDialect).
package sqlstore
