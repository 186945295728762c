package index_test

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/index"
	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/pkg/oci"
	"github.com/hallmark-dev/hallmark/pkg/rekor"
	"github.com/hallmark-dev/hallmark/pkg/root"
	"github.com/hallmark-dev/hallmark/pkg/verify"
)

// realServer is the URL of the Hallmark server that made the real keyless
// signature (its CA, log and built-in issuer).
const realServer = "http://127.0.0.1:5077"

// realKeyless is cosign v2.6.5's keyless signature against a real
// Hallmark server, and that server's trust (pkg/verify/testdata/keyless).
type realKeyless struct {
	subject digest.Digest
	layer   oci.Descriptor
	payload []byte
	trust   *root.Material
}

func loadRealKeyless(t testing.TB) realKeyless {
	t.Helper()
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("..", "..", "pkg", "verify", "testdata", "keyless", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var m struct {
		Layers []oci.Descriptor `json:"layers"`
	}
	if err := json.Unmarshal(read("cosign2-signature.manifest.json"), &m); err != nil {
		t.Fatal(err)
	}
	tr, err := root.Parse(read("trusted_root.json"))
	if err != nil {
		t.Fatal(err)
	}
	mat, err := tr.Material()
	if err != nil {
		t.Fatal(err)
	}
	return realKeyless{subject: digest.Digest(read("cosign2-signature.subject")), layer: m.Layers[len(m.Layers)-1],
		payload: read("cosign2-signature.payload.json"), trust: mat}
}

func (r realKeyless) index(ix *index.Indexer, edit func(map[string]string)) meta.Signature {
	l := r.layer
	l.Annotations = map[string]string{}
	for k, v := range r.layer.Annotations {
		l.Annotations[k] = v
	}
	if edit != nil {
		edit(l.Annotations)
	}
	s := meta.Signature{Repository: "grp/app", Subject: r.subject}
	ix.SimpleSigningLayer(&s, l, r.payload)
	return s
}

func TestKeylessIndex(t *testing.T) {
	r := loadRealKeyless(t)
	e := newEnv(t, false)
	// Without a trusted root: unverified, identity recorded.
	s := r.index(e.ix, nil)
	if s.Status != meta.StatusUnverified || s.Signer != "http://127.0.0.1:5077/grp/app//.gitlab-ci.yml@refs/heads/main" || s.CertIssuer != "http://127.0.0.1:5077" {
		t.Errorf("without trust: %+v", s)
	}
	e = newEnv(t, false, r.trust)
	s = r.index(e.ix, nil)
	if s.Status != meta.StatusVerified || s.LogIndex == nil || *s.LogIndex != 1 || !strings.Contains(s.StatusDetail, "log entry 1 verified") {
		t.Errorf("with the server's trust: %+v", s)
	}
	for oid, want := range map[string]string{"1.3.6.1.4.1.57264.1.13": "714a629c0b401fdce83e847fc9589983fc6f46bc",
		"1.3.6.1.4.1.57264.1.14": "refs/heads/main", "1.3.6.1.4.1.57264.1.1": "http://127.0.0.1:5077", "1.3.6.1.4.1.57264.1.8": "http://127.0.0.1:5077",
		"1.3.6.1.4.1.57264.1.21": "http://127.0.0.1:5077/grp/app/-/jobs/302", "1.3.6.1.4.1.57264.1.11": "self-hosted"} {
		if s.CertExtensions[oid] != want {
			t.Errorf("extension %s = %q, want %q", oid, s.CertExtensions[oid], want)
		}
	}
	if _, ok := s.CertExtensions["1.3.6.1.4.1.57264.1.7"]; ok {
		t.Error("the otherName SAN type recorded as an extension")
	}
	// The certificate's SHA-256 links the signature to the CA's record.
	cert, err := verify.ParseCertificatePEM([]byte(r.layer.Annotations[oci.AnnotationCertificate]))
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(cert.Raw); s.CertSHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("certificate SHA-256 %q, want %x", s.CertSHA256, sum)
	}

	editBundle := func(fn func(b *rekor.Bundle)) func(map[string]string) {
		return func(ann map[string]string) {
			var b rekor.Bundle
			json.Unmarshal([]byte(ann[oci.AnnotationBundle]), &b)
			fn(&b)
			raw, _ := json.Marshal(b)
			ann[oci.AnnotationBundle] = string(raw)
		}
	}
	for _, tc := range []struct {
		name   string
		edit   func(map[string]string)
		status string
		detail string
	}{
		{"bad SET", editBundle(func(b *rekor.Bundle) { b.Payload.IntegratedTime++ }), meta.StatusInvalid, "signed entry timestamp does not verify"},
		{"SET of another log", editBundle(func(b *rekor.Bundle) { b.Payload.LogID = strings.Repeat("ab", 32) }), meta.StatusUnverified, "transparency log this server does not know"},
		{"not logged", func(ann map[string]string) { delete(ann, oci.AnnotationBundle) }, meta.StatusUnverified, "carries no transparency log bundle"},
		{"signature changed", func(ann map[string]string) {
			ann[oci.AnnotationSignature] = r.layer.Annotations[oci.AnnotationSignature][:20] + "AAAA" + r.layer.Annotations[oci.AnnotationSignature][24:]
		}, meta.StatusInvalid, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := r.index(e.ix, tc.edit)
			if s.Status != tc.status || !strings.Contains(s.StatusDetail, tc.detail) {
				t.Errorf("got %s (%s), want %s with %q", s.Status, s.StatusDetail, tc.status, tc.detail)
			}
		})
	}
	t.Run("another CA", func(t *testing.T) {
		tr := *r.trust
		tr.CAs = []root.CA{{Roots: x509.NewCertPool(), Intermediates: x509.NewCertPool()}}
		other := newEnv(t, false, &tr)
		if s := r.index(other.ix, nil); s.Status != meta.StatusUnverified || !strings.Contains(s.StatusDetail, "not issued by this server's CA") {
			t.Errorf("another CA: %s (%s)", s.Status, s.StatusDetail)
		}
	})
}

// FuzzKeylessLayer: hostile certificate, chain and bundle annotations on a
// keyless layer never crash the indexer, and only the real signature is
// verified.
func FuzzKeylessLayer(f *testing.F) {
	r := loadRealKeyless(f)
	e := newEnv(f, false, r.trust)
	a := r.layer.Annotations
	f.Add(a[oci.AnnotationSignature], a[oci.AnnotationCertificate], a[oci.AnnotationChain], a[oci.AnnotationBundle])
	f.Add("", "", "", "")
	f.Add(a[oci.AnnotationSignature], a[oci.AnnotationCertificate], "", `{"SignedEntryTimestamp":"AA==","Payload":{"body":"e30=","logID":"00"}}`)
	f.Fuzz(func(t *testing.T, sig, cert, chain, bundle string) {
		s := r.index(e.ix, func(ann map[string]string) {
			ann[oci.AnnotationSignature], ann[oci.AnnotationCertificate], ann[oci.AnnotationChain], ann[oci.AnnotationBundle] = sig, cert, chain, bundle
		})
		if s.Status == "" || s.Key == "" {
			t.Fatalf("no status or key: %+v", s)
		}
		if s.Status == meta.StatusVerified && (sig != a[oci.AnnotationSignature] || bundle == "") {
			t.Fatalf("verified a signature that is not the real one: %+v", s)
		}
	})
}

// BenchmarkKeylessLayer measures what indexing one keyless signature layer
// costs the server (parse, chain to root through the intermediate, SCT,
// SET, signature), with the trusted root the server publishes.
func BenchmarkKeylessLayer(b *testing.B) {
	r := loadRealKeyless(b)
	e := newEnv(b, false, r.trust)
	for b.Loop() {
		if s := r.index(e.ix, nil); s.Status != meta.StatusVerified {
			b.Fatal(s.StatusDetail)
		}
	}
}
