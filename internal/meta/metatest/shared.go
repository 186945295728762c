package metatest

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/internal/keystore"
	"github.com/hallmark-dev/hallmark/internal/meta/sqlstore"
	"github.com/hallmark-dev/hallmark/internal/tuf"
)

// testKeyStore: the key store table is a keystore.Store that two stores
// (replicas) share: an item is created once, whoever comes first; the
// rest read it. Under Sealed (as the server uses it) the table never
// holds the plain key.
func testKeyStore(t *testing.T, be Backend) {
	db := be.NewDB(t)
	a, b := open(t, db).Keys(), open(t, db).Keys()
	if _, err := a.Get(ctx, "x"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Get of a missing item: %v", err)
	}
	created := time.Unix(1_700_000_000, 123)
	if err := a.Create(ctx, keystore.Item{Name: "oidc-signing-1.pem", Data: []byte{0, 1, 2, 0xff}, Created: created}); err != nil {
		t.Fatal(err)
	}
	if err := b.Create(ctx, keystore.Item{Name: "oidc-signing-1.pem", Data: []byte("other")}); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second Create: %v", err)
	}
	it, err := b.Get(ctx, "oidc-signing-1.pem")
	if err != nil || !bytes.Equal(it.Data, []byte{0, 1, 2, 0xff}) || !it.Created.Equal(created) {
		t.Fatalf("Get: %+v %v", it, err)
	}
	if err := a.Create(ctx, keystore.Item{Name: "oidc-signing-2.pem", Data: []byte("2")}); err != nil {
		t.Fatal(err)
	}
	if err := a.Create(ctx, keystore.Item{Name: "rekor.pem", Data: []byte("r")}); err != nil {
		t.Fatal(err)
	}
	items, err := b.List(ctx, "oidc-signing-")
	if err != nil || len(items) != 2 || items[0].Name != "oidc-signing-1.pem" || items[1].Name != "oidc-signing-2.pem" {
		t.Fatalf("List: %+v %v", items, err)
	}
	if err := b.Delete(ctx, "oidc-signing-1.pem"); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctx, "oidc-signing-1.pem"); err != nil {
		t.Fatalf("deleting a missing item: %v", err)
	}
	if _, err := a.Get(ctx, "oidc-signing-1.pem"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Get after Delete: %v", err)
	}

	// Replicas starting together create one key.
	kek := bytes.Repeat([]byte{9}, keystore.KEKSize)
	var keys [6]any
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() {
			s, err := keystore.NewSealed(open(t, db).Keys(), kek)
			if err != nil {
				t.Error(err)
				return
			}
			k, err := keystore.LoadOrCreate(ctx, s, "registry-token", keystore.ECDSAP256)
			if err != nil {
				t.Error(err)
				return
			}
			keys[i] = k.Public()
		})
	}
	wg.Wait()
	for i := range keys {
		if keys[i] == nil || !reflect.DeepEqual(keys[i], keys[0]) {
			t.Fatalf("replica %d loaded another key", i)
		}
	}
	var row []byte
	if err := db.Raw(t).QueryRowContext(ctx, `SELECT data FROM key_store WHERE name = 'registry-token.pem'`).Scan(&row); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(row, []byte("PRIVATE KEY")) {
		t.Fatal("the database holds the key in the clear")
	}
}

// testTUFFiles: the TUF repository's files in the database, shared by
// replicas, writers serialised across processes by the lock.
func testTUFFiles(t *testing.T, be Backend) {
	db := be.NewDB(t)
	a, err := open(t, db).TUFFiles()
	if db.Dialect().SessionLock == "" {
		if err == nil {
			t.Fatal("TUF files without a session lock")
		}
		t.Skip("the dialect has no session lock: the TUF repository stays in the data dir")
	}
	if err != nil {
		t.Fatal(err)
	}
	b, err := open(t, db).TUFFiles()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Get(ctx, "timestamp.json"); !errors.Is(err, tuf.ErrNotFound) {
		t.Fatalf("Get of a missing file: %v", err)
	}
	for _, bad := range []string{"../x", "x.json", "targets/abc.x", ""} {
		if _, err := a.Get(ctx, bad); !errors.Is(err, tuf.ErrNotFound) {
			t.Errorf("Get(%q): %v", bad, err)
		}
		if err := a.Put(ctx, []tuf.File{{Name: bad, Data: []byte("x")}}); err == nil {
			t.Errorf("Put(%q) accepted", bad)
		}
	}
	if err := a.Put(ctx, []tuf.File{{Name: "1.root.json", Data: []byte("r1")}, {Name: "root.json", Data: []byte("r1")}}); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, []tuf.File{{Name: "root.json", Data: []byte("r2")}}); err != nil {
		t.Fatal(err)
	}
	if got, err := a.Get(ctx, "root.json"); err != nil || string(got) != "r2" {
		t.Fatalf("root.json = %q, %v", got, err)
	}

	// The lock excludes other holders until released, across stores; a
	// waiter gives up with its context.
	unlock, err := a.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	if _, err := b.Lock(short); err == nil {
		t.Fatal("a second holder got the lock")
	}
	cancel()
	got := make(chan func(), 1)
	go func() {
		u, err := b.Lock(ctx)
		if err != nil {
			t.Error(err)
			u = func() {}
		}
		got <- u
	}()
	select {
	case u := <-got:
		u()
		t.Fatal("the lock was taken while held")
	case <-time.After(100 * time.Millisecond):
	}
	unlock()
	(<-got)()
}

// testLoginBudgets: failed-login budgets shared by two stores (replicas):
// concurrent charges of one key from both are all counted (no lost
// update), fn sees exactly the stored budgets, and the sweep drops what is
// full again and keeps the tables bounded.
func testLoginBudgets(t *testing.T, be Backend) {
	db := be.NewDB(t)
	stores := []*sqlstore.Store{open(t, db), open(t, db)}
	now := time.Unix(1_700_000_000, 0)
	if got, err := stores[0].LoadBudgets(ctx, []string{"addr:1", "user:x"}); err != nil || len(got) != 0 {
		t.Fatalf("budgets of a new database: %v %v", got, err)
	}
	const n = 24
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			err := stores[i%2].ChargeBudgets(ctx, []string{"user:x", "addr:1"}, func(cur map[string]auth.Budget) map[string]auth.Budget {
				out := map[string]auth.Budget{}
				for _, k := range []string{"user:x", "addr:1"} {
					b, ok := cur[k]
					if !ok {
						b = auth.Budget{Tokens: 100}
					}
					out[k] = auth.Budget{Tokens: b.Tokens - 1, At: now, Full: now.Add(time.Duration(i+1) * time.Minute)}
				}
				return out
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	got, err := stores[1].LoadBudgets(ctx, []string{"user:x", "addr:1", "addr:2"})
	if err != nil || len(got) != 2 || got["user:x"].Tokens != 100-n || got["addr:1"].Tokens != 100-n || !got["addr:1"].At.Equal(now) {
		t.Fatalf("after %d concurrent charges: %+v %v", n, got, err)
	}
	// A charge fn leaves out is not stored (and not seen as a budget).
	if err := stores[0].ChargeBudgets(ctx, []string{"addr:3"}, func(map[string]auth.Budget) map[string]auth.Budget { return nil }); err != nil {
		t.Fatal(err)
	}
	if got, _ := stores[0].LoadBudgets(ctx, []string{"addr:3"}); len(got) != 0 {
		t.Fatalf("an uncharged key has a budget: %+v", got)
	}

	// Known logins: the later time wins.
	for _, at := range []time.Time{now, now.Add(-time.Hour)} {
		if err := stores[0].RememberLogin(ctx, "user:x@addr:1", at); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := stores[1].LoginSince(ctx, "user:x@addr:1", now); err != nil || !ok {
		t.Fatalf("LoginSince: %v %v", ok, err)
	}
	if ok, _ := stores[1].LoginSince(ctx, "user:x@addr:1", now.Add(time.Second)); ok {
		t.Fatal("LoginSince later than the login")
	}

	// Sweep: full budgets and old logins go; then the bound.
	for i := range 5 {
		k := "addr:b" + string(rune('0'+i))
		stores[0].ChargeBudgets(ctx, []string{k}, func(map[string]auth.Budget) map[string]auth.Budget {
			return map[string]auth.Budget{k: {Tokens: 0, At: now, Full: now.Add(time.Duration(10+i) * time.Hour)}}
		})
	}
	stores[0].RememberLogin(ctx, "user:y@addr:2", now.Add(time.Hour))
	n1, err := stores[1].SweepBudgets(ctx, now.Add(time.Hour), now.Add(time.Minute), 1000)
	if err != nil || n1 != 2+1+1 { // user:x and addr:1 (full after 24 min), addr:3's lock row, the old login
		t.Fatalf("sweep dropped %d (%v), want 4", n1, err)
	}
	if ok, _ := stores[1].LoginSince(ctx, "user:y@addr:2", now); !ok {
		t.Fatal("sweep dropped a recent login")
	}
	if n2, err := stores[1].SweepBudgets(ctx, now.Add(time.Hour), now.Add(time.Minute), 2); err != nil || n2 != 3 {
		t.Fatalf("bounded sweep dropped %d (%v), want 3", n2, err)
	}
	left, _ := stores[0].LoadBudgets(ctx, []string{"addr:b0", "addr:b1", "addr:b2", "addr:b3", "addr:b4"})
	if _, ok := left["addr:b4"]; len(left) != 2 || !ok {
		t.Fatalf("the bound kept %v; want the two furthest from full", left)
	}
}
