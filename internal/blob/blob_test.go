package blob_test

import (
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/blob"
	_ "github.com/hallmark-dev/hallmark/pkg/oci" // registers sha512 for go-digest
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

func TestParseBlobPath(t *testing.T) {
	d256 := digest.FromString("a")
	d512 := digest.SHA512.FromString("a")
	for _, tc := range []struct {
		rel  string
		want digest.Digest
	}{
		{"sha256/" + d256.Encoded()[:2] + "/" + d256.Encoded(), d256},
		{"sha512/" + d512.Encoded()[:2] + "/" + d512.Encoded(), d512},
		{"sha256/00/" + d256.Encoded(), ""},                                      // wrong fan-out directory
		{"sha256/" + d256.Encoded()[:2] + "/" + d256.Encoded()[:63], ""},         // short hex
		{"sha256/" + d256.Encoded()[:2] + "/" + d256.Encoded() + "0", ""},        // long hex
		{"sha256/" + strings.ToUpper(d256.Encoded()[:2]+"/"+d256.Encoded()), ""}, // upper case
		{"md5/d4/d41d8cd98f00b204e9800998ecf8427e", ""},
		{"sha512/" + d256.Encoded()[:2] + "/" + d256.Encoded(), ""}, // sha256 hex under sha512
		{"sha256/" + d256.Encoded(), ""},
		{"sha256/" + d256.Encoded()[:2] + "/" + d256.Encoded() + "/x", ""},
		{"sha256/../" + d256.Encoded(), ""},
		{"", ""},
		{"sha256//", ""},
	} {
		got, ok := blob.ParseBlobPath(tc.rel)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("ParseBlobPath(%q) = %q, %v; want %q", tc.rel, got, ok, tc.want)
		}
		if ok && blob.BlobPath(got) != tc.rel {
			t.Errorf("BlobPath(%s) = %q, want %q", got, blob.BlobPath(got), tc.rel)
		}
	}
}

func FuzzParseBlobPath(f *testing.F) {
	d := digest.FromString("a")
	f.Add("sha256/" + d.Encoded()[:2] + "/" + d.Encoded())
	f.Add("sha512/ab/ab")
	f.Add("../../etc/passwd")
	f.Fuzz(func(t *testing.T, rel string) {
		got, ok := blob.ParseBlobPath(rel)
		if !ok {
			return
		}
		// A path that parses is exactly the layout's path of its digest.
		if got.Validate() != nil || rel != string(got.Algorithm())+"/"+got.Encoded()[:2]+"/"+got.Encoded() {
			t.Fatalf("ParseBlobPath(%q) = %q", rel, got)
		}
	})
}
