package blob_test

import (
	"strings"
	"testing"

	"github.com/hallmark-dev/hallmark/internal/blob"
)

func TestValidUploadID(t *testing.T) {
	for _, tc := range []struct {
		id string
		ok bool
	}{
		{"0123456789abcdef0123456789abcdef", true},
		{"f47ac10b-58cc-4372-a567-0e02b2c3d479", true},
		{"A_b-9", true},
		{strings.Repeat("a", blob.MaxUploadIDLength), true},
		{"", false},
		{strings.Repeat("a", blob.MaxUploadIDLength+1), false},
		{"..", false},
		{"a/b", false},
		{"a%2Fb", false},
		{"id with space", false},
		{"ünïcode", false},
		{"a\x00b", false},
	} {
		if got := blob.ValidUploadID(tc.id); got != tc.ok {
			t.Errorf("ValidUploadID(%q) = %v, want %v", tc.id, got, tc.ok)
		}
	}
}

// FuzzValidUploadID: an accepted id is short and one plain path segment.
func FuzzValidUploadID(f *testing.F) {
	for _, s := range []string{"0123456789abcdef0123456789abcdef", "..", "a/b", "", strings.Repeat("z", 65)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if !blob.ValidUploadID(id) {
			return
		}
		if len(id) == 0 || len(id) > blob.MaxUploadIDLength || strings.ContainsAny(id, "/.%\\ \x00") {
			t.Fatalf("accepted %q", id)
		}
	})
}
