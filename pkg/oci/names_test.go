package oci

import (
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"
)

func TestValidateName(t *testing.T) {
	valid := []string{
		"a", "app", "library/alpine", "group/sub/project", "a/b/c/d/e/f/g",
		"a.b", "a_b", "a__b", "a-b", "a--b", "a---b", "a.b-c_d__e/f0",
		"0", "123/456", strings.Repeat("a", 255), strings.Repeat("ab/", 84) + "abc",
	}
	invalid := []string{
		"", "A", "App", "a/B", "/a", "a/", "a//b", ".a", "a.", "-a", "a-", "_a", "a_",
		"a..b", "a___b", "a.-b", "a-.b", "a._b", "a b", "a\x00", "a/../b", "a/./b", "a:b",
		"a@b", "ä", "a\n", strings.Repeat("a", 256), strings.Repeat("ab/", 85) + "abc",
	}
	for _, n := range valid {
		if err := ValidateName(n); err != nil {
			t.Errorf("ValidateName(%q) = %v", n, err)
		}
		if !refValidName(n) {
			t.Errorf("reference grammar rejects %q", n)
		}
	}
	for _, n := range invalid {
		if err := ValidateName(n); err == nil {
			t.Errorf("ValidateName(%q) accepted", n)
		}
		if refValidName(n) {
			t.Errorf("reference grammar accepts %q", n)
		}
	}
}

func TestValidTag(t *testing.T) {
	valid := []string{"latest", "v1", "V1.2.3", "_x", "1", "a-b_c.d", "sha256-" + strings.Repeat("a", 64), strings.Repeat("t", 128), "a..b", "a--"}
	invalid := []string{"", "-a", ".a", "a:b", "a/b", "a b", "a+b", strings.Repeat("t", 129), "ä", "a\n"}
	for _, tg := range valid {
		if !ValidTag(tg) || !refValidTag(tg) {
			t.Errorf("ValidTag(%q) = false", tg)
		}
	}
	for _, tg := range invalid {
		if ValidTag(tg) || refValidTag(tg) {
			t.Errorf("ValidTag(%q) = true", tg)
		}
	}
}

func TestParseDigest(t *testing.T) {
	s256 := digest.FromString("x")
	s512 := digest.SHA512.FromString("x")
	for _, s := range []string{s256.String(), s512.String()} {
		d, err := ParseDigest(s)
		if err != nil || d.String() != s {
			t.Errorf("ParseDigest(%q) = %q, %v", s, d, err)
		}
	}
	bad := []string{
		"", "sha256", "sha256:", ":abc", "sha256:" + strings.Repeat("a", 63), "sha256:" + strings.Repeat("a", 65),
		"sha256:" + strings.ToUpper(s256.Encoded()), "sha512:" + s256.Encoded(), "sha384:" + strings.Repeat("a", 96),
		"md5:d41d8cd98f00b204e9800998ecf8427e", "SHA256:" + s256.Encoded(), "sha256:" + s256.Encoded() + "\n",
		"sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564",
	}
	for _, s := range bad {
		if d, err := ParseDigest(s); err == nil {
			t.Errorf("ParseDigest(%q) accepted: %q", s, d)
		}
	}
}

func TestIsDigestReference(t *testing.T) {
	if !IsDigestReference("sha256:abc") || IsDigestReference("latest") {
		t.Error("IsDigestReference")
	}
}

// refValidName is an independent, hand-written implementation of the
// distribution-spec name grammar
//
//	[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
//
// plus the 255-character limit, used as a differential oracle.
func refValidName(s string) bool {
	if s == "" || len(s) > MaxNameLength {
		return false
	}
	for _, comp := range strings.Split(s, "/") {
		if !refComponent(comp) {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

func refComponent(c string) bool {
	i := 0
	for {
		// A run of alphanumerics.
		start := i
		for i < len(c) && isAlnum(c[i]) {
			i++
		}
		if i == start {
			return false
		}
		if i == len(c) {
			return true
		}
		// A separator: ".", "_", "__" or one or more "-".
		switch {
		case c[i] == '.':
			i++
		case strings.HasPrefix(c[i:], "__"):
			i += 2
		case c[i] == '_':
			i++
		case c[i] == '-':
			for i < len(c) && c[i] == '-' {
				i++
			}
		default:
			return false
		}
		if i == len(c) {
			return false
		}
	}
}

func refValidTag(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
		if i > 0 {
			ok = ok || c == '.' || c == '-'
		}
		if !ok {
			return false
		}
	}
	return true
}

// FuzzValidateName compares ValidateName with the hand-written grammar.
func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"library/alpine", "group/sub/project", "a__b", "a___b", "a-.b", "A", "a/", "", strings.Repeat("a", 255), strings.Repeat("a", 256), "a\u0131b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := ValidateName(s)
		if (err == nil) != refValidName(s) {
			t.Fatalf("ValidateName(%q) = %v, reference grammar says %v", s, err, refValidName(s))
		}
		if err != nil && len(err.Error()) > 1024+len(s) {
			t.Fatalf("error message is unbounded")
		}
	})
}

// FuzzValidTag compares ValidTag with the hand-written grammar.
func FuzzValidTag(f *testing.F) {
	for _, s := range []string{"latest", "v1.2.3", "-x", "sha256-abc.sig", strings.Repeat("t", 128), strings.Repeat("t", 129), "a\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ValidTag(s) != refValidTag(s) {
			t.Fatalf("ValidTag(%q) = %v, reference says %v", s, ValidTag(s), refValidTag(s))
		}
	})
}

// FuzzParseDigest checks that accepted digests are canonical, supported and
// round-trip unchanged.
func FuzzParseDigest(f *testing.F) {
	for _, s := range []string{digest.FromString("x").String(), digest.SHA512.FromString("x").String(), "sha256:abc", "sha384:" + strings.Repeat("0", 96), "md5:x", ":", "sha256+b64u:abc"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDigest(s)
		if err != nil {
			return
		}
		if d.String() != s {
			t.Fatalf("ParseDigest(%q) changed it to %q", s, d)
		}
		if d.Validate() != nil {
			t.Fatalf("accepted digest %q does not validate", s)
		}
		want := map[digest.Algorithm]int{digest.SHA256: 64, digest.SHA512: 128}[d.Algorithm()]
		if want == 0 || len(d.Encoded()) != want {
			t.Fatalf("accepted %q (algorithm %q)", s, d.Algorithm())
		}
		for _, c := range d.Encoded() {
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				t.Fatalf("accepted non-hex %q", s)
			}
		}
	})
}

func TestSignedDigest(t *testing.T) {
	h256, h512 := strings.Repeat("ab", 32), strings.Repeat("cd", 64)
	for tag, want := range map[string]string{
		"sha256-" + h256 + ".sig":                  "sha256:" + h256,
		"sha512-" + h512 + ".sig":                  "sha512:" + h512,
		"sha256-" + h256 + ".att":                  "",
		"sha256-" + h256:                           "",
		"x-sha256-" + h256 + ".sig":                "",
		"sha256-" + strings.ToUpper(h256) + ".sig": "",
		"sha256-" + h256[:63] + ".sig":             "",
		"sha512-" + h256 + ".sig":                  "",
		"md5-" + h256[:32] + ".sig":                "",
		"v1":                                       "",
		"sha256-" + h256 + ".sig.sig":              "",
	} {
		d, ok := SignedDigest(tag)
		if string(d) != want || ok != (want != "") {
			t.Errorf("%s: %q %v, want %q", tag, d, ok, want)
		}
	}
}

func TestAttachedDigest(t *testing.T) {
	h256 := strings.Repeat("ab", 32)
	for tag, want := range map[string]string{
		"sha256-" + h256 + ".sig":     "sha256:" + h256 + " sig",
		"sha256-" + h256 + ".att":     "sha256:" + h256 + " att",
		"sha256-" + h256 + ".sbom":    "",
		"sha256-" + h256:              "",
		"sha256-" + h256[:8] + ".att": "",
		"sha256-" + h256 + ".sig.att": "",
	} {
		d, suffix, ok := AttachedDigest(tag)
		got := ""
		if ok {
			got = string(d) + " " + suffix
		}
		if got != want {
			t.Errorf("%s: %q, want %q", tag, got, want)
		}
	}
}

// FuzzSignedDigest: any tag pushed is either not a signature or
// attestation tag or names a valid sha256/sha512 digest that maps back to
// the same tag.
func FuzzSignedDigest(f *testing.F) {
	f.Add("sha256-" + strings.Repeat("ab", 32) + ".sig")
	f.Add("sha256-" + strings.Repeat("ab", 32) + ".att")
	f.Add("sha512-.sig")
	f.Fuzz(func(t *testing.T, tag string) {
		d, suffix, ok := AttachedDigest(tag)
		if !ok {
			if _, ok := SignedDigest(tag); ok {
				t.Fatalf("%q is a signature tag but not an attached one", tag)
			}
			return
		}
		if _, err := ParseDigest(string(d)); err != nil || string(d.Algorithm())+"-"+d.Encoded()+"."+suffix != tag {
			t.Fatalf("%q gave %q %q", tag, d, suffix)
		}
		if sd, ok := SignedDigest(tag); ok != (suffix == SignatureSuffix) || ok && sd != d {
			t.Fatalf("%q: SignedDigest %q %v", tag, sd, ok)
		}
	})
}

func TestAttachmentTagName(t *testing.T) {
	d := digest.Digest("sha256:" + strings.Repeat("ab", 32))
	for _, suffix := range []string{SignatureSuffix, AttestationSuffix, SBOMSuffix} {
		tag := AttachmentTagName(d, suffix)
		if got, sfx, ok := AttachmentDigest(tag); !ok || got != d || sfx != suffix {
			t.Errorf("AttachmentDigest(%q) = %q, %q, %v", tag, got, sfx, ok)
		}
	}
	if _, ok := SignedDigest(AttachmentTagName(d, AttestationSuffix)); ok {
		t.Error("an .att tag parsed as a .sig tag")
	}
	if _, _, ok := AttachedDigest(AttachmentTagName(d, SBOMSuffix)); ok {
		t.Error("an .sbom tag parsed as a signature or attestation tag")
	}
	repo, _ := name.NewRepository("example.com/app")
	if got, want := AttachmentTag(repo, "p-", v1.Hash{Algorithm: "sha256", Hex: d.Encoded()}, AttestationSuffix).TagStr(), "p-"+AttachmentTagName(d, AttestationSuffix); got != want {
		t.Errorf("AttachmentTag = %q, want %q", got, want)
	}
}
