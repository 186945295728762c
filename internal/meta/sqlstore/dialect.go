package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/hallmark-dev/hallmark/internal/meta"
)

// Dialect is what differs between the databases the store runs on. The
// driver packages (meta/sqlite, meta/postgres) define one each; the SQL is
// otherwise shared.
type Dialect struct {
	// Name prefixes errors ("sqlite", "postgres").
	Name string
	// Numbered: the driver wants $1, $2, ... placeholders; statements are
	// written with ? and rebound once.
	Numbered bool
	// Types replaces the {{...}} tokens of migrations: {{id}} (generated
	// 64-bit key), {{intkey}} (64-bit key given by the writer), {{bytes}}
	// (binary column) and {{bytewise}} (collation that orders text by
	// bytes, as the OCI listing APIs do).
	Types map[string]string
	// ForUpdate is appended to the SELECT of the log's tree head in the
	// sequencing transaction (" FOR UPDATE" on PostgreSQL; empty on SQLite,
	// whose BEGIN IMMEDIATE already holds the database's write lock).
	ForUpdate string
	// ForShare is appended to the checks that a manifest's references
	// exist, so a concurrent unlink waits for the manifest's commit.
	ForShare string
	// SkipLocked is appended to the SELECTs with which workers claim
	// queued work, index jobs and garbage collection tasks (" FOR UPDATE
	// SKIP LOCKED" on PostgreSQL, so concurrent workers of several replicas
	// claim different jobs without waiting; empty on SQLite, whose single
	// writer serializes the workers).
	SkipLocked string
	// LockRepositories, when set, is run first in the transactions that
	// create or delete a project: it keeps repositories from being created
	// until they commit (PostgreSQL: a table lock that conflicts with
	// INSERT), so a new repository always gets the project they leave.
	LockRepositories string
	// LockMigrations, when set, is run first in each migration transaction
	// (PostgreSQL: a transaction-scoped advisory lock; SQLite's BEGIN
	// IMMEDIATE already is one).
	LockMigrations string
	// SessionLock and SessionUnlock, when set, take and release an
	// exclusive lock named by their one int64 argument that lasts until
	// released or the session ends (PostgreSQL: pg_advisory_lock). Stores
	// that need one (the TUF files) exist only on such a dialect.
	SessionLock, SessionUnlock string
	// Retryable says the database aborted a transaction that may succeed
	// when run again (serialization failure, deadlock).
	Retryable func(error) bool
	// Unavailable says err means the database cannot be reached or is
	// shutting down; such errors are wrapped with meta.ErrUnavailable.
	Unavailable func(error) bool
}

// wrap marks errors of an unreachable database with meta.ErrUnavailable
// (the registry answers 503 for them); other errors pass unchanged.
func (d *Dialect) wrap(err error) error {
	if err == nil || d.Unavailable == nil || errors.Is(err, meta.ErrUnavailable) || !d.Unavailable(err) {
		return err
	}
	return fmt.Errorf("%w: %w", meta.ErrUnavailable, err)
}

// rebind turns the ? placeholders of q (outside string literals and quoted
// identifiers) into $1, $2, ... when the dialect numbers them.
func (d *Dialect) rebind(q string) string {
	if !d.Numbered || !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	var quote byte
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// execer is what *sql.DB and *sql.Tx share.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	PrepareContext(ctx context.Context, query string) (*sql.Stmt, error)
}

// conn runs ?-placeholder statements on a pool or in a transaction, in the
// dialect's placeholder style, marking errors of an unreachable database.
type conn struct {
	db execer
	d  *Dialect
}

// textArgs replaces, in the string arguments, invalid UTF-8 and NUL bytes
// by U+FFFD: PostgreSQL's TEXT refuses both (a failed login's user name
// would otherwise be lost from the audit log, a lookup would fail instead
// of finding nothing), and SQLite gets the same so both backends store the
// same text. Binary data travels as []byte and is untouched.
func textArgs(args []any) []any {
	for i, a := range args {
		s, ok := a.(string)
		if !ok || (utf8.ValidString(s) && strings.IndexByte(s, 0) < 0) {
			continue
		}
		out := append([]any(nil), args...)
		for j := i; j < len(out); j++ {
			if s, ok := out[j].(string); ok {
				out[j] = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
			}
		}
		return out
	}
	return args
}

func (c conn) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	res, err := c.db.ExecContext(ctx, c.d.rebind(q), textArgs(args)...)
	return res, c.d.wrap(err)
}

func (c conn) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	rows, err := c.db.QueryContext(ctx, c.d.rebind(q), textArgs(args)...)
	return rows, c.d.wrap(err)
}

func (c conn) queryRow(ctx context.Context, q string, args ...any) row {
	return row{c.db.QueryRowContext(ctx, c.d.rebind(q), textArgs(args)...), c.d}
}

func (c conn) prepare(ctx context.Context, q string) (stmt, error) {
	st, err := c.db.PrepareContext(ctx, c.d.rebind(q))
	return stmt{st, c.d}, c.d.wrap(err)
}

// row is a *sql.Row whose Scan marks errors of an unreachable database.
type row struct {
	r *sql.Row
	d *Dialect
}

func (r row) Scan(dest ...any) error { return r.d.wrap(r.r.Scan(dest...)) }

// stmt is a prepared statement of a conn.
type stmt struct {
	st *sql.Stmt
	d  *Dialect
}

func (s stmt) queryRow(ctx context.Context, args ...any) row {
	return row{s.st.QueryRowContext(ctx, textArgs(args)...), s.d}
}

func (s stmt) exec(ctx context.Context, args ...any) (sql.Result, error) {
	res, err := s.st.ExecContext(ctx, textArgs(args)...)
	return res, s.d.wrap(err)
}

func (s stmt) close() error { return s.st.Close() }
