package verify

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-dev/hallmark/pkg/fulcio"
)

func TestCheckProvenance(t *testing.T) {
	key := newKey(t)
	utf8 := func(s string) []byte { b, _ := asn1.MarshalWithParams(s, "utf8"); return b }
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour),
		ExtraExtensions: []pkix.Extension{
			{Id: fulcio.OID(fulcio.SourceRepositoryURI), Value: utf8("https://hallmark.test/group/app")},
			{Id: fulcio.OID(fulcio.SourceRepositoryDigest), Value: utf8("abc123")},
			{Id: fulcio.OID(fulcio.SourceRepositoryRef), Value: utf8("refs/heads/main")},
			{Id: fulcio.OID(fulcio.RunInvocationURI), Value: utf8("https://hallmark.test/group/app/-/jobs/302")},
		}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ann := map[string]any{
		"com.gitlab.ci.commit.sha": "abc123", "org.opencontainers.image.revision": "abc123", "com.gitlab.ci.commit.ref.name": "main",
		"com.gitlab.ci.project.path": "group/app", "org.opencontainers.image.source": "https://hallmark.test/group/app",
		"com.gitlab.ci.job.url": "https://hallmark.test/group/app/-/jobs/302", "com.gitlab.ci.job.id": "302", "tag": "v1",
	}
	checks := CheckProvenance(cert, ann)
	for _, c := range checks {
		want := ProvenanceMatch
		if c.Annotation == "tag" {
			want = ProvenanceNotAttested
		}
		if c.Status != want {
			t.Errorf("%s: status %q, want %q (%+v)", c.Annotation, c.Status, want, c)
		}
	}
	if err := ProvenanceError(checks); err != nil {
		t.Fatalf("unexpected contradiction: %v", err)
	}
	ann["com.gitlab.ci.commit.sha"] = "forged"
	ann["com.gitlab.ci.commit.ref.name"] = "release"
	err = ProvenanceError(CheckProvenance(cert, ann))
	if err == nil || !strings.Contains(err.Error(), `com.gitlab.ci.commit.sha="forged" but the certificate attests "abc123"`) || !strings.Contains(err.Error(), "release") {
		t.Fatalf("contradictions not reported: %v", err)
	}
}
