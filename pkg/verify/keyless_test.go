package verify

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-dev/hallmark/pkg/fulcio"
	"github.com/hallmark-dev/hallmark/pkg/oci"
	"github.com/hallmark-dev/hallmark/pkg/rekor"
	"github.com/hallmark-dev/hallmark/pkg/root"
)

type pki struct {
	root       *x509.Certificate
	rootKey    *ecdsa.PrivateKey
	logKey     *ecdsa.PrivateKey
	logID      string
	leafKey    *ecdsa.PrivateKey
	leafPEM    []byte
	identity   string
	issuer     string
	integrated time.Time
}

func newPKI(t testing.TB) *pki {
	t.Helper()
	p := &pki{rootKey: newKey(t), logKey: newKey(t), leafKey: newKey(t),
		identity: "https://hallmark.test/group/app//.gitlab-ci.yml@refs/heads/main", issuer: "https://hallmark.test"}
	now := time.Now().Add(-time.Minute)
	rootTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test root"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, &p.rootKey.PublicKey, p.rootKey)
	if err != nil {
		t.Fatal(err)
	}
	p.root, _ = x509.ParseCertificate(der)
	u, _ := url.Parse(p.identity)
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), NotBefore: now, NotAfter: now.Add(10 * time.Minute),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}, URIs: []*url.URL{u},
		ExtraExtensions: []pkix.Extension{{Id: fulcio.OIDIssuerV1, Value: []byte(p.issuer)}}}
	der, err = x509.CreateCertificate(rand.Reader, leafTmpl, p.root, &p.leafKey.PublicKey, p.rootKey)
	if err != nil {
		t.Fatal(err)
	}
	p.leafPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	pkixDER, _ := x509.MarshalPKIXPublicKey(&p.logKey.PublicKey)
	id := sha256.Sum256(pkixDER)
	p.logID = hex.EncodeToString(id[:])
	p.integrated = now.Add(time.Minute)
	return p
}

// layer signs payload with the leaf key and logs it with logKey.
func (p *pki) layer(t testing.TB, payload []byte, logKey *ecdsa.PrivateKey) Layer {
	t.Helper()
	h := sha256.Sum256(payload)
	sig, _ := ecdsa.SignASN1(rand.Reader, p.leafKey, h[:])
	body, _ := json.Marshal(map[string]any{"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": map[string]any{
		"data":      map[string]any{"hash": map[string]string{"algorithm": "sha256", "value": hex.EncodeToString(h[:])}},
		"signature": map[string]any{"content": sig, "publicKey": map[string]any{"content": p.leafPEM}}}})
	e := &rekor.LogEntry{Body: body, IntegratedTime: p.integrated.Unix(), LogIndex: 7, LogID: p.logID}
	canon, _ := rekor.SETPayload(e.Body, e.IntegratedTime, e.LogID, e.LogIndex)
	ch := sha256.Sum256(canon)
	e.SET, _ = ecdsa.SignASN1(rand.Reader, logKey, ch[:])
	bundle, _ := json.Marshal(rekor.BundleOf(e))
	return Layer{Digest: layerDigest(payload), Payload: payload, Annotations: map[string]string{
		oci.AnnotationSignature: base64.StdEncoding.EncodeToString(sig), oci.AnnotationCertificate: string(p.leafPEM),
		oci.AnnotationChain: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.root.Raw})), oci.AnnotationBundle: string(bundle)}}
}

func (p *pki) opts(ids ...Identity) Options {
	roots := x509.NewCertPool()
	roots.AddCert(p.root)
	return Options{Cert: &CertOptions{CAs: []root.CA{{Roots: roots}}, Identities: ids, IgnoreSCT: true},
		TlogKeys: map[string]root.LogKey{p.logID: {Key: &p.logKey.PublicKey}}}
}

func TestKeyless(t *testing.T) {
	p := newPKI(t)
	payload := testPayload(testDigest, `{"tag":"v1"}`)
	good := p.layer(t, payload, p.logKey)
	exact := Identity{Subject: p.identity, Issuer: p.issuer}

	v, err := VerifyLayer(good, testDigest, p.opts(exact))
	if err != nil {
		t.Fatalf("valid keyless signature rejected: %v", err)
	}
	if v.Claims.Optional["Subject"] != p.identity || v.Claims.Optional["Issuer"] != p.issuer || v.Bundle.Payload.LogIndex != 7 {
		t.Fatalf("output not enriched as cosign does: %v", v.Claims.Optional)
	}
	if _, err := VerifyLayer(good, testDigest, p.opts(Identity{SubjectRegexp: "^https://hallmark.test/group/.*$", IssuerRegexp: "hallmark"})); err != nil {
		t.Fatalf("regexp identity rejected: %v", err)
	}

	otherLog := newKey(t)
	tamperedBundle := p.layer(t, payload, p.logKey)
	var b rekor.Bundle
	json.Unmarshal([]byte(tamperedBundle.Annotations[oci.AnnotationBundle]), &b)
	b.Payload.LogIndex = 8
	raw, _ := json.Marshal(b)
	tamperedBundle.Annotations[oci.AnnotationBundle] = string(raw)
	otherPayloadBundle := p.layer(t, payload, p.logKey)
	otherPayloadBundle.Annotations[oci.AnnotationBundle] = p.layer(t, testPayload(testDigest, `{"tag":"v2"}`), p.logKey).Annotations[oci.AnnotationBundle]
	noBundle := p.layer(t, payload, p.logKey)
	delete(noBundle.Annotations, oci.AnnotationBundle)
	otherRoot := newPKI(t)

	tests := []struct {
		name  string
		layer Layer
		opts  Options
		check string
		text  string
	}{
		{"identity mismatch", good, p.opts(Identity{Subject: "https://hallmark.test/other//.gitlab-ci.yml@refs/heads/main", Issuer: p.issuer}), CheckIdentity, "got subjects [" + p.identity + "]"},
		{"issuer mismatch", good, p.opts(Identity{Subject: p.identity, Issuer: "https://gitlab.com"}), CheckIdentity, "with issuer " + p.issuer},
		{"untrusted root", good, otherRoot.opts(exact), CheckCertificate, "does not chain"},
		{"SET from another key", p.layer(t, payload, otherLog), p.opts(exact), CheckTlog, "signed entry timestamp does not verify"},
		{"tampered log entry", tamperedBundle, p.opts(exact), CheckTlog, "signed entry timestamp does not verify"},
		{"entry for another payload", otherPayloadBundle, p.opts(exact), CheckTlog, "other content"},
		{"no bundle", noBundle, p.opts(exact), CheckTlog, "no transparency log bundle"},
		{"unknown log", good, func() Options { o := p.opts(exact); o.TlogKeys = nil; return o }(), CheckTlog, "not in the trusted root"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := VerifyLayer(tc.layer, testDigest, tc.opts)
			ce, ok := err.(*CheckError)
			if !ok || ce.Check != tc.check || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("got %v; want %s check failing with %q", err, tc.check, tc.text)
			}
		})
	}
}
