package keystore

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

var ctx = context.Background()

func TestLoadOrCreatePersists(t *testing.T) {
	d, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		kind Kind
	}{{"p256", ECDSAP256}, {"p384", ECDSAP384}, {"ed", Ed25519}, {"rsa", RSA2048}} {
		k1, err := LoadOrCreate(ctx, d, tc.name, tc.kind)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(d.Where(KeyItem(tc.name)))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", tc.name, fi.Mode().Perm())
		}
		k2, err := LoadOrCreate(ctx, d, tc.name, tc.kind)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(k1.Public(), k2.Public()) {
			t.Errorf("%s: key changed on reload", tc.name)
		}
	}
	k, _ := LoadOrCreate(ctx, d, "ed", ECDSAP256) // existing file wins over kind
	if _, ok := k.(ed25519.PrivateKey); !ok {
		t.Errorf("existing ed25519 key loaded as %T", k)
	}
	k, _ = LoadOrCreate(ctx, d, "p256", Ed25519)
	if _, ok := k.(*ecdsa.PrivateKey); !ok {
		t.Errorf("existing ecdsa key loaded as %T", k)
	}
}

func TestCorruptKeyIsAnErrorNotReplaced(t *testing.T) {
	d, _ := Open(t.TempDir())
	for _, body := range []string{"", "garbage", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"} {
		os.WriteFile(d.Where(KeyItem("bad")), []byte(body), 0o600)
		if _, err := LoadOrCreate(ctx, d, "bad", ECDSAP256); err == nil {
			t.Errorf("corrupt key %q accepted", body)
		}
		if got, _ := os.ReadFile(d.Where(KeyItem("bad"))); string(got) != body {
			t.Errorf("corrupt key file was replaced")
		}
	}
}

func TestWriteFileRefusesOverwrite(t *testing.T) {
	d, _ := Open(t.TempDir())
	p := d.Where("x")
	if err := WriteFile(p, []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(p, []byte("two")); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("overwrite: %v", err)
	}
	if got, _ := os.ReadFile(p); string(got) != "one" {
		t.Fatalf("content %q", got)
	}
}

func TestDirRefusesPaths(t *testing.T) {
	d, _ := Open(t.TempDir())
	for _, name := range []string{"", "../x", "a/b", ".hidden", "/etc/passwd"} {
		if err := d.Create(ctx, Item{Name: name, Data: []byte("x")}); err == nil {
			t.Errorf("Create(%q) accepted", name)
		}
		if _, err := d.Get(ctx, name); err == nil || errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Get(%q): %v", name, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	d, _ := Open(f.TempDir())
	LoadOrCreate(ctx, d, "k", ECDSAP256)
	raw, _ := os.ReadFile(d.Where(KeyItem("k")))
	f.Add(raw)
	f.Add([]byte("-----BEGIN EC PRIVATE KEY-----\nAA==\n-----END EC PRIVATE KEY-----\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := Parse(b)
		if err == nil && k == nil {
			t.Fatal("nil key without error")
		}
	})
}

// stores returns a Dir and a Sealed store over a Dir, the two shapes the
// server uses (the database table behaves as a Dir does; its own tests are
// in meta/metatest).
func stores(t *testing.T) map[string]Store {
	d, _ := Open(t.TempDir())
	under, _ := Open(t.TempDir())
	s, err := NewSealed(under, bytes.Repeat([]byte{7}, KEKSize))
	if err != nil {
		t.Fatal(err)
	}
	return map[string]Store{"dir": d, "sealed": s}
}

func TestStoreContract(t *testing.T) {
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			if _, err := Load(ctx, s, "k"); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("load of a missing key: %v", err)
			}
			k, err := Generate(Ed25519)
			if err != nil {
				t.Fatal(err)
			}
			created := time.Unix(1_700_000_000, 0)
			if err := Put(ctx, s, "k", k, created); err != nil {
				t.Fatal(err)
			}
			other, _ := Generate(Ed25519)
			if err := Put(ctx, s, "k", other, time.Time{}); !errors.Is(err, fs.ErrExist) {
				t.Fatalf("Put replaced an existing key: %v", err)
			}
			got, err := Load(ctx, s, "k")
			if err != nil || !reflect.DeepEqual(got.Public(), k.Public()) {
				t.Fatalf("loaded %v (%v), want the stored key", got, err)
			}
			it, err := s.Get(ctx, KeyItem("k"))
			if err != nil || !it.Created.Equal(created) {
				t.Fatalf("creation time %v (%v), want %v", it.Created, err, created)
			}
			if err := s.Create(ctx, Item{Name: "rec-1", Data: []byte("one")}); err != nil {
				t.Fatal(err)
			}
			items, err := s.List(ctx, "rec-")
			if err != nil || len(items) != 1 || items[0].Name != "rec-1" || string(items[0].Data) != "one" {
				t.Fatalf("List: %+v %v", items, err)
			}
			if err := Remove(ctx, s, "k"); err != nil {
				t.Fatal(err)
			}
			if err := Remove(ctx, s, "k"); err != nil {
				t.Fatalf("removing a missing key: %v", err)
			}
			if _, err := Load(ctx, s, "k"); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("load after remove: %v", err)
			}
		})
	}
}

// Two servers creating the same key at once end up with one key.
func TestLoadOrCreateRace(t *testing.T) {
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			const n = 8
			keys := make([]any, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					k, err := LoadOrCreate(ctx, s, "race", ECDSAP256)
					if err != nil {
						t.Error(err)
						return
					}
					keys[i] = k.Public()
				})
			}
			wg.Wait()
			for i := 1; i < n; i++ {
				if !reflect.DeepEqual(keys[0], keys[i]) {
					t.Fatalf("caller %d got another key", i)
				}
			}
			items := map[string]int{}
			for range n {
				it, err := LoadOrCreateItem(ctx, s, "secret", func() ([]byte, error) { return []byte(time.Now().String()), nil })
				if err != nil {
					t.Fatal(err)
				}
				items[string(it.Data)]++
			}
			if len(items) != 1 {
				t.Fatalf("LoadOrCreateItem returned %d different values", len(items))
			}
		})
	}
}

// The sealed store never hands its plain data to the store underneath; a
// different key encryption key, a row moved to another name, or a changed
// byte is refused, never taken for a key.
func TestSealed(t *testing.T) {
	under, _ := Open(t.TempDir())
	kek := bytes.Repeat([]byte{1}, KEKSize)
	s, _ := NewSealed(under, kek)
	k, err := LoadOrCreate(ctx, s, "rekor", ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(under.Where(KeyItem("rekor")))
	if bytes.Contains(raw, []byte("PRIVATE KEY")) || raw[0] != sealVersion {
		t.Fatalf("the stored item is not sealed: %q", raw[:20])
	}
	again, _ := NewSealed(under, kek)
	if k2, err := Load(ctx, again, "rekor"); err != nil || !reflect.DeepEqual(k2.Public(), k.Public()) {
		t.Fatalf("reopened with the same key: %v", err)
	}
	wrong, _ := NewSealed(under, bytes.Repeat([]byte{2}, KEKSize))
	if _, err := LoadOrCreate(ctx, wrong, "rekor", ECDSAP256); !errors.Is(err, ErrWrongKEK) {
		t.Fatalf("another key encryption key: %v", err)
	}
	if _, err := wrong.List(ctx, ""); !errors.Is(err, ErrWrongKEK) {
		t.Fatalf("List with another key encryption key: %v", err)
	}
	if err := os.WriteFile(under.Where(KeyItem("moved")), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(ctx, s, "moved"); !errors.Is(err, ErrWrongKEK) {
		t.Fatalf("a sealed item under another name: %v", err)
	}
	path := under.Where(KeyItem("rekor"))
	for i := range raw {
		bad := bytes.Clone(raw)
		bad[i] ^= 1
		if err := os.WriteFile(path, bad, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(ctx, s, "rekor"); err == nil {
			t.Fatalf("byte %d changed: accepted", i)
		}
	}
	os.WriteFile(path, raw, 0o600)
	if _, err := Load(ctx, s, "rekor"); err != nil {
		t.Fatalf("restored: %v", err)
	}
	if _, err := NewSealed(under, kek[:16]); err == nil {
		t.Fatal("a 16-byte key encryption key was accepted")
	}
}

func TestParseKEK(t *testing.T) {
	key := bytes.Repeat([]byte{0xab}, KEKSize)
	for _, ok := range []string{
		base64.StdEncoding.EncodeToString(key), base64.StdEncoding.EncodeToString(key) + "\n",
		"  " + hex.EncodeToString(key) + "\r\n", base64.RawURLEncoding.EncodeToString(key),
	} {
		if got, err := ParseKEK([]byte(ok)); err != nil || !bytes.Equal(got, key) {
			t.Errorf("ParseKEK(%q) = %x, %v", ok, got, err)
		}
	}
	secret := "correct horse battery staple 123"
	for _, bad := range []string{"", secret, base64.StdEncoding.EncodeToString(key[:16]), hex.EncodeToString(key[:31]), string(key)} {
		_, err := ParseKEK([]byte(bad))
		if err == nil {
			t.Errorf("ParseKEK(%q) accepted", bad)
			continue
		}
		if bad != "" && strings.Contains(err.Error(), bad) {
			t.Errorf("the error repeats the input: %v", err)
		}
	}
}

func FuzzParseKEK(f *testing.F) {
	f.Add([]byte(base64.StdEncoding.EncodeToString(make([]byte, KEKSize))))
	f.Add([]byte(hex.EncodeToString(make([]byte, KEKSize))))
	f.Add([]byte("x"))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := ParseKEK(b)
		if err == nil && len(k) != KEKSize {
			t.Fatalf("accepted a %d-byte key", len(k))
		}
	})
}

// FuzzSealedOpen: whatever the database row holds, opening it fails or
// yields what was sealed; it never panics.
func FuzzSealedOpen(f *testing.F) {
	s, _ := NewSealed(nil, make([]byte, KEKSize))
	good, _ := s.seal("k", []byte("data"))
	f.Add(good)
	f.Add([]byte{sealVersion})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		data, err := s.open("k", b)
		if err == nil && !bytes.Equal(data, []byte("data")) {
			t.Fatalf("opened forged data to %q", data)
		}
	})
}
