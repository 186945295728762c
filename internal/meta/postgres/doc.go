// Package postgres is the metadata database driver for scale-out: any
// number of Hallmark replicas share one PostgreSQL database (metadata,
// auth, audit log and transparency log). It connects with pgx v5 through
// its database/sql adapter and supplies PostgreSQL's dialect to the shared
// store (meta/sqlstore): $n placeholders, identity keys, BYTEA, byte-order
// collation for listed names, an advisory lock around migrations, and
// SELECT ... FOR UPDATE on the log's head row so appends from every replica
// form one sequence.
package postgres
