package keystore

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"errors"
	"os"
	"reflect"
	"testing"
)

func TestLoadOrCreatePersists(t *testing.T) {
	d, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		kind Kind
	}{{"p256", ECDSAP256}, {"p384", ECDSAP384}, {"ed", Ed25519}, {"rsa", RSA2048}} {
		k1, err := d.LoadOrCreate(tc.name, tc.kind)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(d.Path(tc.name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", tc.name, fi.Mode().Perm())
		}
		k2, err := d.LoadOrCreate(tc.name, tc.kind)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(k1.Public(), k2.Public()) {
			t.Errorf("%s: key changed on reload", tc.name)
		}
	}
	k, _ := d.LoadOrCreate("ed", ECDSAP256) // existing file wins over kind
	if _, ok := k.(ed25519.PrivateKey); !ok {
		t.Errorf("existing ed25519 key loaded as %T", k)
	}
	k, _ = d.LoadOrCreate("p256", Ed25519)
	if _, ok := k.(*ecdsa.PrivateKey); !ok {
		t.Errorf("existing ecdsa key loaded as %T", k)
	}
}

func TestCorruptKeyIsAnErrorNotReplaced(t *testing.T) {
	d, _ := Open(t.TempDir())
	for _, body := range []string{"", "garbage", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"} {
		os.WriteFile(d.Path("bad"), []byte(body), 0o600)
		if _, err := d.LoadOrCreate("bad", ECDSAP256); err == nil {
			t.Errorf("corrupt key %q accepted", body)
		}
		if got, _ := os.ReadFile(d.Path("bad")); string(got) != body {
			t.Errorf("corrupt key file was replaced")
		}
	}
}

func TestWriteFileRefusesOverwrite(t *testing.T) {
	d, _ := Open(t.TempDir())
	p := d.Path("x")
	if err := WriteFile(p, []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(p, []byte("two")); err == nil {
		t.Fatal("overwrite allowed")
	}
	if got, _ := os.ReadFile(p); string(got) != "one" {
		t.Fatalf("content %q", got)
	}
}

func FuzzParse(f *testing.F) {
	d, _ := Open(f.TempDir())
	d.LoadOrCreate("k", ECDSAP256)
	raw, _ := os.ReadFile(d.Path("k"))
	f.Add(raw)
	f.Add([]byte("-----BEGIN EC PRIVATE KEY-----\nAA==\n-----END EC PRIVATE KEY-----\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := Parse(b)
		if err == nil && k == nil {
			t.Fatal("nil key without error")
		}
	})
}

func TestPutLoadRemove(t *testing.T) {
	d, _ := Open(t.TempDir())
	if _, err := d.Load("k"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("load of a missing key: %v", err)
	}
	k, err := Generate(Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Put("k", k); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(d.Path("k")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("stored key: %v %v", fi, err)
	}
	other, _ := Generate(Ed25519)
	if err := d.Put("k", other); !errors.Is(err, os.ErrExist) {
		t.Fatalf("Put replaced an existing key: %v", err)
	}
	got, err := d.Load("k")
	if err != nil || !reflect.DeepEqual(got.Public(), k.Public()) {
		t.Fatalf("loaded %v (%v), want the stored key", got, err)
	}
	if err := d.Remove("k"); err != nil {
		t.Fatal(err)
	}
	if err := d.Remove("k"); err != nil {
		t.Fatalf("removing a missing key: %v", err)
	}
	if _, err := d.Load("k"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("load after remove: %v", err)
	}
}
