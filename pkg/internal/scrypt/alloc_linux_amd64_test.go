//go:build !purego

package scrypt

import (
	"bytes"
	"testing"

	xscrypt "golang.org/x/crypto/scrypt"
)

// When huge pages are slow to come by, the rest of the scratch memory is
// mapped with small pages; the derivation must not notice.
func TestSmallPageFallback(t *testing.T) {
	saved := slowHugeStep
	slowHugeStep = 0
	defer func() { slowHugeStep = saved }()
	got, err := Key([]byte("pw"), []byte("salt"), 1<<15, 8, 1, 32)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := xscrypt.Key([]byte("pw"), []byte("salt"), 1<<15, 8, 1, 32)
	if !bytes.Equal(got, want) {
		t.Fatalf("got %x, want %x", got, want)
	}
}
