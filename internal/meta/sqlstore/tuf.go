package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"

	"github.com/hallmark-dev/hallmark/internal/tuf"
)

// TUFStore keeps the TUF repository's files in the database (table
// tuf_files), for replicas sharing it: every replica serves what any of
// them (or `hallmark tuf` on the database) signed last. Writers are
// serialised with a session-level advisory lock.
type TUFStore struct{ s *Store }

var _ tuf.Store = TUFStore{}

// tufLockKey is the advisory lock of the TUF repository: "hlm-tuf!".
const tufLockKey = 0x686c6d2d74756621

// TUFFiles returns the database's TUF file store. It needs a database
// with session locks (PostgreSQL); the embedded default keeps the files
// in the data dir (tuf.FileStore).
func (s *Store) TUFFiles() (TUFStore, error) {
	if s.d.SessionLock == "" {
		return TUFStore{}, fmt.Errorf("%s: the TUF repository is kept in the database only on PostgreSQL", s.d.Name)
	}
	return TUFStore{s}, nil
}

// Get implements tuf.Store.
func (t TUFStore) Get(ctx context.Context, name string) ([]byte, error) {
	if err := tuf.CheckName(name); err != nil {
		return nil, fmt.Errorf("%w: %w", tuf.ErrNotFound, err)
	}
	var data []byte
	err := t.s.r.queryRow(ctx, `SELECT data FROM tuf_files WHERE name = ?`, name).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: %s", tuf.ErrNotFound, name)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: read TUF file %s: %w", t.s.d.Name, name, err)
	}
	return data, nil
}

// Put implements tuf.Store: every file in one transaction.
func (t TUFStore) Put(ctx context.Context, files []tuf.File) error {
	for _, f := range files {
		if err := tuf.CheckName(f.Name); err != nil {
			return err
		}
	}
	now := time.Now().UnixNano()
	err := t.s.tx(ctx, func(tx conn) error {
		for _, f := range files {
			if _, err := tx.exec(ctx, `INSERT INTO tuf_files(name, data, updated_at) VALUES (?, ?, ?)
				ON CONFLICT(name) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at`, f.Name, f.Data, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s: write TUF files: %w", t.s.d.Name, err)
	}
	return nil
}

// Lock implements tuf.Store with the database's session lock on a
// connection of its own, held until unlock (or until the connection
// breaks, which releases it).
func (t TUFStore) Lock(ctx context.Context) (func(), error) {
	c, err := t.s.wdb.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: TUF repository lock: %w", t.s.d.Name, t.s.d.wrap(err))
	}
	lc := conn{c, t.s.d}
	if _, err := lc.exec(ctx, t.s.d.SessionLock, int64(tufLockKey)); err != nil {
		c.Close()
		return nil, fmt.Errorf("%s: waiting for the TUF repository lock (another replica or hallmark tuf is changing it): %w", t.s.d.Name, err)
	}
	return func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, err := lc.exec(uctx, t.s.d.SessionUnlock, int64(tufLockKey)); err != nil {
			c.Raw(func(any) error { return driver.ErrBadConn }) // drop the session: that releases the lock
		}
		c.Close()
	}, nil
}
