package root_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hallmark-dev/hallmark/pkg/root"
)

// FuzzParse: the trusted root parser never panics, and whatever it accepts
// re-encodes into something it accepts again.
func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile(filepath.Join("testdata", "public-trusted_root.json")); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1","tlogs":[],"certificateAuthorities":[],"ctlogs":[]}`))
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1","tlogs":[{"baseUrl":"x","hashAlgorithm":"SHA2_256","publicKey":{"rawBytes":"AAAA"},"logId":{"keyId":"AAAA"}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		tr, err := root.Parse(b)
		if err != nil {
			return
		}
		out, err := tr.Marshal()
		if err != nil {
			t.Fatalf("accepted but cannot encode: %v", err)
		}
		if _, err := root.Parse(out); err != nil {
			t.Fatalf("re-encoded trusted root rejected: %v", err)
		}
		_ = tr.Legacy()
		_, _ = tr.Material()
	})
}

// FuzzParseSigningConfig: the signing config parser never panics and its
// accepted configs can be checked against a trusted root.
func FuzzParseSigningConfig(f *testing.F) {
	if b, err := os.ReadFile(filepath.Join("testdata", "public-signing_config.v0.2.json")); err == nil {
		f.Add(b)
	}
	good, _ := root.NewSigningConfig("http://127.0.0.1:5000", "local", time.Unix(1700000000, 0)).Marshal()
	f.Add(good)
	tr := &root.TrustedRoot{CertificateAuthorities: []root.CertificateAuthority{{URI: "http://127.0.0.1:5000"}},
		Tlogs: []root.TransparencyLog{{BaseURL: "http://127.0.0.1:5000"}}}
	f.Fuzz(func(t *testing.T, b []byte) {
		sc, err := root.ParseSigningConfig(b)
		if err != nil {
			return
		}
		_ = sc.CheckAgainst(tr)
		if _, err := sc.Marshal(); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzNormalizeFingerprint: accepted fingerprints are 64 lowercase hex
// digits.
func FuzzNormalizeFingerprint(f *testing.F) {
	f.Add("sha256:" + "ab12" + "00000000000000000000000000000000000000000000000000000000000")
	f.Add("AB:CD")
	f.Fuzz(func(t *testing.T, s string) {
		fp, err := root.NormalizeFingerprint(s)
		if err != nil {
			return
		}
		if len(fp) != 64 {
			t.Fatalf("normalized %q to %q", s, fp)
		}
		for _, c := range fp {
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				t.Fatalf("normalized %q to %q", s, fp)
			}
		}
	})
}
