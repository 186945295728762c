package verify

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/hallmark-dev/hallmark/pkg/oci"
	"github.com/hallmark-dev/hallmark/pkg/payload"
	"github.com/hallmark-dev/hallmark/pkg/rekor"
)

// bundleSpec says how testBundle builds a sigstore bundle.
type bundleSpec struct {
	statement []byte
	keyBased  bool  // verifier is the leaf's public key, not its certificate
	set       bool  // include a signed entry timestamp (inclusion promise)
	proof     bool  // include an inclusion proof with a signed checkpoint
	time      int64 // the integratedTime the bundle claims
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// testBundle signs spec.statement with the pki's leaf key as a DSSE
// envelope and logs it as a dsse entry in a one-leaf tree of p.logKey.
func (p *pki) testBundle(t *testing.T, spec bundleSpec) []byte {
	t.Helper()
	pae := payload.PAE(payload.InTotoPayloadType, spec.statement)
	h := sha256.Sum256(pae)
	sig, err := ecdsa.SignASN1(rand.Reader, p.leafKey, h[:])
	if err != nil {
		t.Fatal(err)
	}
	verifierPEM := p.leafPEM
	if spec.keyBased {
		der, _ := x509.MarshalPKIXPublicKey(&p.leafKey.PublicKey)
		verifierPEM = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	}
	ph := sha256.Sum256(spec.statement)
	body, _ := json.Marshal(map[string]any{"apiVersion": "0.0.1", "kind": "dsse", "spec": map[string]any{
		"envelopeHash": map[string]string{"algorithm": "sha256", "value": strings.Repeat("0", 64)},
		"payloadHash":  map[string]string{"algorithm": "sha256", "value": hex.EncodeToString(ph[:])},
		"signatures":   []map[string]string{{"signature": b64(sig), "verifier": b64(verifierPEM)}}}})
	logID, _ := hex.DecodeString(p.logID)
	entry := map[string]any{"logIndex": "0", "logId": map[string]string{"keyId": b64(logID)},
		"kindVersion": map[string]string{"kind": "dsse", "version": "0.0.1"}, "integratedTime": strconv.FormatInt(spec.time, 10),
		"canonicalizedBody": b64(body)}
	if spec.set {
		canon, _ := rekor.SETPayload(body, spec.time, p.logID, 0)
		ch := sha256.Sum256(canon)
		set, _ := ecdsa.SignASN1(rand.Reader, p.logKey, ch[:])
		entry["inclusionPromise"] = map[string]string{"signedEntryTimestamp": b64(set)}
	}
	if spec.proof {
		root := rfc6962.DefaultHasher.HashLeaf(body)
		text := "hallmark.test - 1\n1\n" + b64(root) + "\n"
		th := sha256.Sum256([]byte(text))
		csig, _ := ecdsa.SignASN1(rand.Reader, p.logKey, th[:])
		der, _ := x509.MarshalPKIXPublicKey(&p.logKey.PublicKey)
		hint := sha256.Sum256(der)
		note := text + "\n\u2014 hallmark.test " + b64(append(hint[:4:4], csig...)) + "\n"
		entry["inclusionProof"] = map[string]any{"logIndex": "0", "rootHash": b64(root), "treeSize": "1", "hashes": []string{},
			"checkpoint": map[string]string{"envelope": note}}
	}
	vm := map[string]any{"tlogEntries": []any{entry}}
	if spec.keyBased {
		vm["publicKey"] = map[string]string{"hint": ""}
	} else {
		block, _ := pem.Decode(p.leafPEM)
		vm["certificate"] = map[string]string{"rawBytes": b64(block.Bytes)}
	}
	out, _ := json.Marshal(map[string]any{"mediaType": oci.BundleMediaTypeV03, "verificationMaterial": vm,
		"dsseEnvelope": map[string]any{"payload": b64(spec.statement), "payloadType": payload.InTotoPayloadType,
			"signatures": []map[string]string{{"sig": b64(sig)}}}})
	return out
}

func testStatement(subjects ...string) []byte {
	return []byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[` + strings.Join(subjects, ",") +
		`],"predicateType":"https://sigstore.dev/cosign/sign/v1","predicate":{}}`)
}

func subjectJSON(dig, tag string) string {
	return `{"name":"img","digest":{"sha256":"` + strings.TrimPrefix(dig, "sha256:") + `"},"annotations":{"tag":"` + tag + `"}}`
}

// TestBundleIntegratedTimeNeedsSET: a log entry with only an inclusion
// proof does not authenticate its integratedTime (neither the proof nor
// the checkpoint covers it), so it cannot show that a certificate was
// valid when the signature was logged. Otherwise anyone holding the key of
// a long-expired certificate could log a new signature and claim any time
// inside the certificate's validity window (sigstore-go likewise never
// uses the time of a proof-only entry).
func TestBundleIntegratedTimeNeedsSET(t *testing.T) {
	p := newPKI(t)
	st := testStatement(subjectJSON(testDigest, "v1"))
	check := BundleCheck{ImageDigest: testDigest}
	exact := Identity{Subject: p.identity, Issuer: p.issuer}
	inside := p.integrated.Unix()

	if _, err := VerifySigstoreBundle(p.testBundle(t, bundleSpec{statement: st, set: true, proof: true, time: inside}), check, p.opts(exact), "b"); err != nil {
		t.Fatalf("bundle with SET and proof rejected: %v", err)
	}
	if _, err := VerifySigstoreBundle(p.testBundle(t, bundleSpec{statement: st, set: true, time: inside}), check, p.opts(exact), "b"); err != nil {
		t.Fatalf("bundle with SET rejected: %v", err)
	}
	_, err := VerifySigstoreBundle(p.testBundle(t, bundleSpec{statement: st, proof: true, time: inside}), check, p.opts(exact), "b")
	var ce *CheckError
	if !errors.As(err, &ce) || ce.Check != CheckTlog || !errors.Is(err, rekor.ErrSET) || !strings.Contains(err.Error(), "integrated time") {
		t.Fatalf("certificate signature logged with only an inclusion proof (unauthenticated time) accepted or wrong error: %v", err)
	}
	// A key-based signature needs no trusted time: the proof suffices.
	kopts := Options{PublicKey: &p.leafKey.PublicKey, TlogKeys: p.opts().TlogKeys}
	if _, err := VerifySigstoreBundle(p.testBundle(t, bundleSpec{statement: st, keyBased: true, proof: true, time: inside}), check, kopts, "b"); err != nil {
		t.Fatalf("key-based bundle with an inclusion proof rejected: %v", err)
	}
}

// TestBundleAnnotationsOfTheImageSubject: the annotations checked (and
// reported) are those of the statement subject that is the image, not of
// whichever subject comes first: a statement about two images must not
// lend the first image's annotations to the second.
func TestBundleAnnotationsOfTheImageSubject(t *testing.T) {
	p := newPKI(t)
	other := "sha256:" + strings.Repeat("ab", 32)
	st := testStatement(subjectJSON(other, "prod"), subjectJSON(testDigest, "dev"))
	raw := p.testBundle(t, bundleSpec{statement: st, set: true, time: p.integrated.Unix()})
	o := p.opts(Identity{Subject: p.identity, Issuer: p.issuer})
	o.Annotations = map[string]string{"tag": "prod"}
	_, err := VerifySigstoreBundle(raw, BundleCheck{ImageDigest: testDigest}, o, "b")
	var ce *CheckError
	if !errors.As(err, &ce) || ce.Check != CheckAnnotation {
		t.Fatalf("-a tag=prod on the image annotated tag=dev: got %v, want an annotation check failure", err)
	}
	o.Annotations = map[string]string{"tag": "dev"}
	v, err := VerifySigstoreBundle(raw, BundleCheck{ImageDigest: testDigest}, o, "b")
	if err != nil || v.Claims.Optional["tag"] != "dev" {
		t.Fatalf("-a tag=dev on the image annotated tag=dev: %v (claims %v)", err, v)
	}
	o.Annotations = map[string]string{"tag": "prod"}
	if _, err := VerifySigstoreBundle(raw, BundleCheck{ImageDigest: other}, o, "b"); err != nil {
		t.Fatalf("-a tag=prod on the image annotated tag=prod: %v", err)
	}
}
