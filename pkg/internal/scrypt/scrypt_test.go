package scrypt

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"testing"

	xscrypt "golang.org/x/crypto/scrypt"
)

// RFC 7914 section 12 test vectors with r = 8 (the fast path's r).
func TestRFC7914Vectors(t *testing.T) {
	for _, tc := range []struct {
		password, salt string
		n, r, p        int
		want           string
	}{
		{"", "", 16, 1, 1, "77d6576238657b203b19ca42c18a0497f16b4844e3074ae8dfdffa3fede21442fcd0069ded0948f8326a753a0fc81f17e8d3e0fb2e0d3628cf35e20c38d18906"},
		{"password", "NaCl", 1024, 8, 16, "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b3731622eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640"},
		{"pleaseletmein", "SodiumChloride", 16384, 8, 1, "7023bdcb3afd7348461c06cd81fd38ebfda8fbba904f8e3ea9b543f6545da1f2d5432955613f0fcf62d49705242a9af9e61e85dc0d651e40dfcf017b45575887"},
	} {
		got, err := Key([]byte(tc.password), []byte(tc.salt), tc.n, tc.r, tc.p, 64)
		if err != nil {
			t.Fatal(err)
		}
		if hex.EncodeToString(got) != tc.want {
			t.Errorf("Key(%q, %q, N=%d, r=%d, p=%d) = %x, want %s", tc.password, tc.salt, tc.n, tc.r, tc.p, got, tc.want)
		}
	}
}

// The fast path must agree with x/crypto for every work factor cosign key
// files use and for small ones.
func TestMatchesXCrypto(t *testing.T) {
	if !fastPath {
		t.Log("no fast path on this machine: Key is x/crypto's")
	}
	for _, n := range []int{2, 4, 16, 256, 1 << 15, 1 << 16, 1 << 17} {
		for _, p := range []int{1, 2} {
			if n >= 1<<15 && p > 1 {
				continue
			}
			pw, salt := []byte(fmt.Sprintf("pw-%d", n)), []byte(fmt.Sprintf("salt-%d-%d", n, p))
			got, err := Key(pw, salt, n, 8, p, 32)
			if err != nil {
				t.Fatal(err)
			}
			want, err := xscrypt.Key(pw, salt, n, 8, p, 32)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("N=%d p=%d: got %x, x/crypto %x", n, p, got, want)
			}
		}
	}
}

func TestBadParameters(t *testing.T) {
	for _, tc := range []struct{ n, r, p, keyLen int }{
		{0, 8, 1, 32}, {1, 8, 1, 32}, {3, 8, 1, 32}, {1000, 8, 1, 32}, {16, 0, 1, 32}, {16, 8, 0, 32}, {-16, 8, 1, 32},
	} {
		if _, err := Key([]byte("pw"), []byte("salt"), tc.n, tc.r, tc.p, tc.keyLen); err == nil {
			t.Errorf("Key(N=%d, r=%d, p=%d) succeeded, want an error", tc.n, tc.r, tc.p)
		}
	}
}

func FuzzKey(f *testing.F) {
	f.Add([]byte("password"), []byte("NaCl"), uint8(4), uint8(1))
	f.Add([]byte{}, []byte{}, uint8(1), uint8(2))
	f.Fuzz(func(t *testing.T, pw, salt []byte, logN, p uint8) {
		n, pp := 1<<(1+logN%10), 1+int(p%3)
		got, err := Key(pw, salt, n, 8, pp, 48)
		if err != nil {
			t.Fatal(err)
		}
		want, err := xscrypt.Key(pw, salt, n, 8, pp, 48)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("N=%d p=%d: got %x, x/crypto %x", n, pp, got, want)
		}
	})
}

func BenchmarkKey(b *testing.B) {
	for _, n := range []int{1 << 15, 1 << 16} {
		b.Run(fmt.Sprintf("hallmark/N=%d", n), func(b *testing.B) {
			for b.Loop() {
				if _, err := Key([]byte("pw"), []byte("salt"), n, 8, 1, 32); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("x-crypto/N=%d", n), func(b *testing.B) {
			for b.Loop() {
				if _, err := xscrypt.Key([]byte("pw"), []byte("salt"), n, 8, 1, 32); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
