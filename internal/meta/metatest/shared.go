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

	"github.com/hallmark-dev/hallmark/internal/keystore"
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
