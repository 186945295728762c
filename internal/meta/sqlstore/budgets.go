package sqlstore

import (
	"context"
	"math"
	"slices"
	"time"

	"github.com/hallmark-dev/hallmark/internal/auth"
)

// The failed-login budgets and known logins (tables login_budgets,
// known_logins) of replicas sharing the database: auth.BudgetStore.

var _ auth.BudgetStore = (*Store)(nil)

func keyArgs(keys []string) []any {
	args := make([]any, len(keys))
	for i, k := range keys {
		args[i] = k
	}
	return args
}

// LoadBudgets implements auth.BudgetStore.
func (s *Store) LoadBudgets(ctx context.Context, keys []string) (map[string]auth.Budget, error) {
	out := make(map[string]auth.Budget, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	rows, err := s.r.query(ctx, `SELECT key, tokens, at, full_at FROM login_budgets WHERE key IN (`+placeholders(len(keys), 1)+`)`, keyArgs(keys)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return out, scanBudgets(rows, out)
}

type rowsScanner interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

func scanBudgets(rows rowsScanner, out map[string]auth.Budget) error {
	for rows.Next() {
		var k string
		var tokens float64
		var at, full int64
		if err := rows.Scan(&k, &tokens, &at, &full); err != nil {
			return err
		}
		if at != 0 { // 0: a row ChargeBudgets created to lock, not yet charged
			out[k] = auth.Budget{Tokens: tokens, At: fromNanos(at), Full: fromNanos(full)}
		}
	}
	return rows.Err()
}

// ChargeBudgets implements auth.BudgetStore: in one transaction, the
// keys' rows are created if missing and locked (in key order, so two
// replicas cannot deadlock), read, and updated with what fn returns.
func (s *Store) ChargeBudgets(ctx context.Context, keys []string, fn func(map[string]auth.Budget) map[string]auth.Budget) error {
	keys = slices.Compact(slices.Sorted(slices.Values(keys)))
	if len(keys) == 0 {
		return nil
	}
	return s.tx(ctx, func(tx conn) error {
		args := make([]any, 0, 4*len(keys))
		for _, k := range keys {
			args = append(args, k, 0.0, 0, 0)
		}
		if _, err := tx.exec(ctx, `INSERT INTO login_budgets(key, tokens, at, full_at) VALUES `+placeholders(len(keys), 4)+` ON CONFLICT(key) DO NOTHING`, args...); err != nil {
			return err
		}
		rows, err := tx.query(ctx, `SELECT key, tokens, at, full_at FROM login_budgets WHERE key IN (`+placeholders(len(keys), 1)+`) ORDER BY key`+s.d.ForUpdate, keyArgs(keys)...)
		if err != nil {
			return err
		}
		cur := make(map[string]auth.Budget, len(keys))
		err = scanBudgets(rows, cur)
		rows.Close()
		if err != nil {
			return err
		}
		next := fn(cur)
		for _, k := range keys {
			b, ok := next[k]
			if !ok {
				continue
			}
			if _, err := tx.exec(ctx, `UPDATE login_budgets SET tokens = ?, at = ?, full_at = ? WHERE key = ?`,
				b.Tokens, nanos(b.At), nanos(b.Full), k); err != nil {
				return err
			}
		}
		return nil
	})
}

// RememberLogin implements auth.BudgetStore.
func (s *Store) RememberLogin(ctx context.Context, key string, at time.Time) error {
	_, err := s.w.exec(ctx, `INSERT INTO known_logins(key, at) VALUES (?, ?)
		ON CONFLICT(key) DO UPDATE SET at = excluded.at WHERE known_logins.at < excluded.at`, key, nanos(at))
	return err
}

// LoginSince implements auth.BudgetStore.
func (s *Store) LoginSince(ctx context.Context, key string, since time.Time) (bool, error) {
	var n int
	err := s.r.queryRow(ctx, `SELECT COUNT(*) FROM known_logins WHERE key = ? AND at >= ?`, key, nanos(since)).Scan(&n)
	return n > 0, err
}

// SweepBudgets implements auth.BudgetStore.
func (s *Store) SweepBudgets(ctx context.Context, now, loginsBefore time.Time, max int) (int64, error) {
	var total int64
	for _, q := range []struct {
		expired string
		arg     int64
		table   string
		order   string
	}{
		{`DELETE FROM login_budgets WHERE full_at <= ?`, nanos(now), "login_budgets", "full_at"},
		{`DELETE FROM known_logins WHERE at < ?`, nanos(loginsBefore), "known_logins", "at"},
	} {
		res, err := s.w.exec(ctx, q.expired, q.arg)
		if err != nil {
			return total, err
		}
		n, _ := res.RowsAffected()
		total += n
		var count int64
		if err := s.r.queryRow(ctx, `SELECT COUNT(*) FROM `+q.table).Scan(&count); err != nil {
			return total, err
		}
		if count <= int64(max) {
			continue
		}
		// Over the bound: drop the rows that say least (budgets closest to
		// full, oldest logins).
		res, err = s.w.exec(ctx, `DELETE FROM `+q.table+` WHERE key IN (SELECT key FROM `+q.table+` ORDER BY `+q.order+` LIMIT ?)`, min(count-int64(max), math.MaxInt32))
		if err != nil {
			return total, err
		}
		n, _ = res.RowsAffected()
		total += n
	}
	return total, nil
}
