package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/hallmark-dev/hallmark/internal/keystore"
)

// KeyStore is the key store in the database (table key_store), for
// replicas sharing it. It stores what it is given: internal/keystore's
// Sealed encrypts the items before they get here.
type KeyStore struct{ s *Store }

var _ keystore.Store = KeyStore{}

// Keys returns the database's key store.
func (s *Store) Keys() KeyStore { return KeyStore{s} }

// Get implements keystore.Store.
func (k KeyStore) Get(ctx context.Context, name string) (keystore.Item, error) {
	it := keystore.Item{Name: name}
	var created int64
	err := k.s.r.queryRow(ctx, `SELECT data, created_at FROM key_store WHERE name = ?`, name).Scan(&it.Data, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return it, fmt.Errorf("%s: %w", k.Where(name), fs.ErrNotExist)
	}
	if err != nil {
		return it, fmt.Errorf("%s: read %s: %w", k.s.d.Name, k.Where(name), err)
	}
	it.Created = fromNanos(created)
	return it, nil
}

// Create implements keystore.Store: an existing item is kept, and the
// error wraps fs.ErrExist.
func (k KeyStore) Create(ctx context.Context, it keystore.Item) error {
	if it.Created.IsZero() {
		it.Created = time.Now()
	}
	res, err := k.s.w.exec(ctx, `INSERT INTO key_store(name, data, created_at) VALUES (?, ?, ?) ON CONFLICT(name) DO NOTHING`,
		it.Name, it.Data, nanos(it.Created))
	if err != nil {
		return fmt.Errorf("%s: store %s: %w", k.s.d.Name, k.Where(it.Name), err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%s exists already: %w", k.Where(it.Name), fs.ErrExist)
	}
	return nil
}

// Delete implements keystore.Store.
func (k KeyStore) Delete(ctx context.Context, name string) error {
	if _, err := k.s.w.exec(ctx, `DELETE FROM key_store WHERE name = ?`, name); err != nil {
		return fmt.Errorf("%s: delete %s: %w", k.s.d.Name, k.Where(name), err)
	}
	return nil
}

// List implements keystore.Store. The table holds tens of items: they are
// read whole and filtered here (no LIKE pattern to escape).
func (k KeyStore) List(ctx context.Context, prefix string) ([]keystore.Item, error) {
	rows, err := k.s.r.query(ctx, `SELECT name, data, created_at FROM key_store ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("%s: list the key store: %w", k.s.d.Name, err)
	}
	defer rows.Close()
	var out []keystore.Item
	for rows.Next() {
		var it keystore.Item
		var created int64
		if err := rows.Scan(&it.Name, &it.Data, &created); err != nil {
			return nil, k.s.d.wrap(err)
		}
		if strings.HasPrefix(it.Name, prefix) {
			it.Created = fromNanos(created)
			out = append(out, it)
		}
	}
	return out, k.s.d.wrap(rows.Err())
}

// Where implements keystore.Store.
func (k KeyStore) Where(name string) string {
	return "key store item " + name + " in the " + k.s.d.Name + " database"
}
