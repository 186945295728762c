package verify

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	ct "github.com/google/certificate-transparency-go"
	cttls "github.com/google/certificate-transparency-go/tls"
	ctx509 "github.com/google/certificate-transparency-go/x509"

	"github.com/hallmark-dev/hallmark/pkg/rekor"
	"github.com/hallmark-dev/hallmark/pkg/root"
)

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// windowCase is one validFor window around the time it is checked at (at)
// and whether it trusts then. Both ends are inclusive, as in sigstore-go.
type windowCase struct {
	name string
	w    root.Window
	ok   bool
}

func windowCases(at time.Time, step time.Duration) []windowCase {
	return []windowCase{
		{"ended before", root.Window{Start: at.Add(-time.Hour), End: at.Add(-step)}, false},
		{"starts after", root.Window{Start: at.Add(step)}, false},
		{"starts after, with an end", root.Window{Start: at.Add(step), End: at.Add(time.Hour)}, false},
		{"inside", root.Window{Start: at.Add(-time.Hour), End: at.Add(time.Hour)}, true},
		{"ends exactly then", root.Window{Start: at.Add(-time.Hour), End: at}, true},
		{"starts exactly then", root.Window{Start: at}, true},
		{"open (legacy PEM key)", root.Window{}, true},
	}
}

// wantWindow checks the outcome of one window case: nil when the window
// trusts, else a CheckError for check wrapping ErrOutsideValidFor whose
// text contains every want.
func wantWindow(t *testing.T, what string, err error, tc windowCase, check string, want ...string) {
	t.Helper()
	if tc.ok {
		if err != nil {
			t.Errorf("%s: window %s rejected: %v", what, tc.w, err)
		}
		return
	}
	var ce *CheckError
	if !errors.As(err, &ce) || ce.Check != check || !errors.Is(err, ErrOutsideValidFor) {
		t.Errorf("%s: window %s: got %v; want the %s check failing with ErrOutsideValidFor", what, tc.w, err, check)
		return
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%s: error lacks %q:\n%v", what, w, err)
		}
	}
}

// TestTlogKeyValidFor: a transparency log key vouches only for entries
// integrated inside its validFor window, whether through a SET (cosign's
// bundle annotation, a sigstore bundle's inclusion promise) or through the
// checkpoint of an inclusion proof.
func TestTlogKeyValidFor(t *testing.T) {
	p := newPKI(t)
	at := time.Unix(p.integrated.Unix(), 0)
	exact := Identity{Subject: p.identity, Issuer: p.issuer}
	layer := p.layer(t, testPayload(testDigest, `{"tag":"v1"}`), p.logKey)
	st := testStatement(subjectJSON(testDigest, "v1"))
	withSET := p.testBundle(t, bundleSpec{statement: st, set: true, proof: true, time: at.Unix()})
	proofOnly := p.testBundle(t, bundleSpec{statement: st, keyBased: true, proof: true, time: at.Unix()})
	check := BundleCheck{ImageDigest: testDigest}
	for _, tc := range windowCases(at, time.Second) {
		t.Run(tc.name, func(t *testing.T) {
			o := p.opts(exact)
			o.TlogKeys[p.logID] = root.LogKey{Key: &p.logKey.PublicKey, ValidFor: tc.w}
			msg := "transparency log key " + p.logID + " is trusted " + tc.w.String() + "; the entry"
			_, err := VerifyLayer(layer, testDigest, o)
			wantWindow(t, "signature layer (SET)", err, tc, CheckTlog, msg, "(index 7) was integrated at "+rfc3339(at))
			_, err = VerifySigstoreBundle(withSET, check, o, "b")
			wantWindow(t, "bundle (SET and proof)", err, tc, CheckTlog, msg, "(index 0) was integrated at "+rfc3339(at))
			ko := Options{PublicKey: &p.leafKey.PublicKey, TlogKeys: o.TlogKeys}
			_, err = VerifySigstoreBundle(proofOnly, check, ko, "b")
			wantWindow(t, "key-based bundle (inclusion proof only)", err, tc, CheckTlog, msg, "was integrated at "+rfc3339(at))
		})
	}
	// The window is checked before the SET: a time outside it is refused
	// whatever the SET says, and a key from a legacy PEM file (no window)
	// still verifies the SET itself.
	o := p.opts(exact)
	o.TlogKeys[p.logID] = root.LogKey{Key: &p.logKey.PublicKey}
	forged := p.layer(t, testPayload(testDigest, `{"tag":"v1"}`), newKey(t))
	if _, err := VerifyLayer(forged, testDigest, o); !errors.Is(err, rekor.ErrSET) {
		t.Errorf("SET of another key with an open window: %v", err)
	}
}

// TestCAValidFor: a certificate authority is trusted only when the
// signature's observer time lies in its validFor window, as sigstore-go
// checks it: the integrated time of the verified log entry, else (log
// ignored) the verification time.
func TestCAValidFor(t *testing.T) {
	p := newPKI(t)
	at := time.Unix(p.integrated.Unix(), 0)
	exact := Identity{Subject: p.identity, Issuer: p.issuer}
	layer := p.layer(t, testPayload(testDigest, `{"tag":"v1"}`), p.logKey)
	bundle := p.testBundle(t, bundleSpec{statement: testStatement(subjectJSON(testDigest, "v1")), set: true, proof: true, time: at.Unix()})
	check := BundleCheck{ImageDigest: testDigest}
	opts := func(cas ...root.CA) Options {
		o := p.opts(exact)
		o.Cert.CAs = cas
		return o
	}
	ca := func(uri string, w root.Window) root.CA {
		roots := x509.NewCertPool()
		roots.AddCert(p.root)
		return root.CA{URI: uri, Roots: roots, ValidFor: w}
	}
	for _, tc := range windowCases(at, time.Second) {
		t.Run(tc.name, func(t *testing.T) {
			o := opts(ca("https://ca.test", tc.w))
			msg := "certificate authority https://ca.test is trusted " + tc.w.String() + "; "
			_, err := VerifyLayer(layer, testDigest, o)
			wantWindow(t, "signature layer", err, tc, CheckCertificate, msg, "the signature was logged at "+rfc3339(at))
			_, err = VerifySigstoreBundle(bundle, check, o, "b")
			wantWindow(t, "bundle", err, tc, CheckCertificate, msg, "the signature was logged at "+rfc3339(at))
			o.IgnoreTlog, o.Now = true, at
			_, err = VerifyLayer(layer, testDigest, o)
			wantWindow(t, "signature layer without the log", err, tc, CheckCertificate, msg, "verification time, at "+rfc3339(at))
			_, err = VerifySigstoreBundle(bundle, check, o, "b")
			wantWindow(t, "bundle without the log", err, tc, CheckCertificate, msg, "verification time, at "+rfc3339(at))
		})
	}
	// Rotation: two CAs share the root; the retired one does not trust the
	// signature, its successor does.
	retired := ca("https://old.ca.test", root.Window{Start: at.Add(-time.Hour), End: at.Add(-time.Second)})
	current := ca("https://new.ca.test", root.Window{Start: at.Add(-time.Minute)})
	if _, err := VerifyLayer(layer, testDigest, opts(retired, current)); err != nil {
		t.Errorf("retired and current CA: %v", err)
	}
	future := ca("https://next.ca.test", root.Window{Start: at.Add(time.Hour)})
	_, err := VerifyLayer(layer, testDigest, opts(retired, future))
	wantWindow(t, "retired and future CA", err, windowCase{w: retired.ValidFor}, CheckCertificate,
		"certificate authority https://old.ca.test is trusted "+retired.ValidFor.String(), "certificate authority https://next.ca.test is trusted "+future.ValidFor.String())
	// A CA the certificate does not chain to lends it no window.
	other := newPKI(t)
	otherRoots := x509.NewCertPool()
	otherRoots.AddCert(other.root)
	_, err = VerifyLayer(layer, testDigest, opts(retired, root.CA{URI: "https://other.test", Roots: otherRoots}))
	if !errors.Is(err, ErrOutsideValidFor) || strings.Contains(err.Error(), "other.test") {
		t.Errorf("retired CA and an open CA of another root: %v", err)
	}
}

// detachedSCT is what a Fulcio v1 server returns in its SCT header: an
// X.509-entry SCT for p's leaf, timestamped at ts, signed by key.
func (p *pki) detachedSCT(t *testing.T, key *ecdsa.PrivateKey, ts time.Time) []byte {
	t.Helper()
	block, _ := pem.Decode(p.leafPEM)
	leaf, err := ctx509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	id := sha256.Sum256(der)
	sct := ct.SignedCertificateTimestamp{SCTVersion: ct.V1, LogID: ct.LogID{KeyID: id}, Timestamp: uint64(ts.UnixMilli())}
	mtl, err := ct.MerkleTreeLeafFromChain([]*ctx509.Certificate{leaf}, ct.X509LogEntryType, sct.Timestamp)
	if err != nil {
		t.Fatal(err)
	}
	input, err := ct.SerializeSCTSignatureInput(sct, ct.LogEntry{Leaf: *mtl})
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(input)
	sig, err := ecdsa.SignASN1(rand.Reader, key, h[:])
	if err != nil {
		t.Fatal(err)
	}
	ds, err := cttls.Marshal(ct.DigitallySigned{Algorithm: cttls.SignatureAndHashAlgorithm{Hash: cttls.SHA256, Signature: cttls.ECDSA}, Signature: sig})
	if err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(map[string]any{"sct_version": 0, "id": id[:], "timestamp": sct.Timestamp, "extensions": "", "signature": ds})
	return out
}

// TestCTLogKeyValidFor: a CT log key vouches only for SCTs timestamped
// inside its validFor window (millisecond SCT times, ends inclusive).
// Embedded SCTs are covered with real certificates in
// TestRealValidForWindows.
func TestCTLogKeyValidFor(t *testing.T) {
	p := newPKI(t)
	ctKey := newKey(t)
	at := time.UnixMilli(time.Now().UnixMilli())
	raw := p.detachedSCT(t, ctKey, at)
	block, _ := pem.Decode(p.leafPEM)
	leaf, _ := x509.ParseCertificate(block.Bytes)
	der, _ := x509.MarshalPKIXPublicKey(&ctKey.PublicKey)
	sum := sha256.Sum256(der)
	id := hex.EncodeToString(sum[:])
	for _, tc := range windowCases(at, time.Millisecond) {
		t.Run(tc.name, func(t *testing.T) {
			err := VerifyDetachedSCT(raw, leaf, p.root, map[string]root.LogKey{id: {Key: &ctKey.PublicKey, ValidFor: tc.w}})
			if tc.ok {
				if err != nil {
					t.Fatalf("window %s rejected: %v", tc.w, err)
				}
				return
			}
			want := "CT log key " + id + " is trusted " + tc.w.String() + "; the SCT was issued at " + at.UTC().Format(time.RFC3339Nano)
			if !errors.Is(err, ErrSCT) || !errors.Is(err, ErrOutsideValidFor) || !strings.Contains(err.Error(), want) {
				t.Fatalf("window %s: got %v; want ErrSCT and ErrOutsideValidFor with %q", tc.w, err, want)
			}
		})
	}
	// The window does not replace the signature check.
	other := newKey(t)
	der, _ = x509.MarshalPKIXPublicKey(&other.PublicKey)
	sum = sha256.Sum256(der)
	forged := map[string]root.LogKey{hex.EncodeToString(sum[:]): {Key: &ctKey.PublicKey}}
	if err := VerifyDetachedSCT(p.detachedSCT(t, other, at), leaf, p.root, forged); !errors.Is(err, ErrSCT) || !strings.Contains(err.Error(), "does not verify") {
		t.Errorf("an SCT signed by another key: %v", err)
	}
}
