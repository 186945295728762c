package verify

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/hallmark-dev/hallmark/pkg/bundle"
	"github.com/hallmark-dev/hallmark/pkg/oci"
	"github.com/hallmark-dev/hallmark/pkg/rekor"
)

var testBlob = []byte("release archive bytes\n")

func blobSubject(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// blobBundle is the sigstore bundle of l (a keyless signature over
// testBlob with its log entry) as cosign v3 sign-blob writes it: a message
// signature over the blob's digest; edit changes it before it is written.
func blobBundle(t testing.TB, p *pki, l Layer, edit func(*bundle.Bundle)) []byte {
	t.Helper()
	rb, err := rekor.ParseBundle(l.Annotations[oci.AnnotationBundle])
	if err != nil {
		t.Fatal(err)
	}
	e, _ := rb.Entry()
	te, err := bundle.EntryOf(e)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(p.leafPEM)
	sig, _ := base64.StdEncoding.DecodeString(l.Annotations[oci.AnnotationSignature])
	sum := sha256.Sum256(l.Payload)
	b := &bundle.Bundle{MediaType: oci.BundleMediaTypeV03,
		VerificationMaterial: bundle.VerificationMaterial{Certificate: &bundle.Certificate{RawBytes: block.Bytes}, TlogEntries: []bundle.TlogEntry{te}},
		MessageSignature:     &bundle.MessageSignature{MessageDigest: &bundle.HashOutput{Algorithm: bundle.SHA256, Digest: sum[:]}, Signature: sig}}
	if edit != nil {
		edit(b)
	}
	raw, err := b.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestBlobSignatures: a keyless signature over a blob verifies as cosign's
// bundle file (BlobSignature) and as a sigstore bundle (BlobBundle), with
// its log entry, for the blob only; tampering with the blob, the digest
// the bundle names or the log entry fails with the check that caught it.
func TestBlobSignatures(t *testing.T) {
	p := newPKI(t)
	l := p.layer(t, testBlob, p.logKey)
	opts := p.opts(Identity{Subject: p.identity, Issuer: p.issuer})
	verifyBlob := func(s Signed, blob []byte, o Options) (*Verified, error) {
		tr, pol := o.Split(blobSubject(blob))
		return Verify(context.Background(), s, tr, pol)
	}
	good := blobBundle(t, p, l, nil)
	for name, s := range map[string]Signed{
		"cosign bundle file": BlobSignature(testBlob, l.Annotations),
		"sigstore bundle":    BlobBundle(good, "bundle b.json", testBlob),
	} {
		v, err := verifyBlob(s, testBlob, opts)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !v.TlogVerified || v.Certificate == nil || v.LogEntry.LogIndex != 7 {
			t.Errorf("%s: %+v", name, v)
		}
	}
	if s := BlobSignature(testBlob, l.Annotations); s.Kind() != KindBlob || s.Name() != blobSubject(testBlob) {
		t.Errorf("blob signature kind %q name %q", s.Kind(), s.Name())
	}

	other := []byte("another archive\n")
	otherSum := sha256.Sum256(other)
	cases := []struct {
		name  string
		s     Signed
		blob  []byte
		check string
		class Class
		text  string
	}{
		{"cosign file, another blob", BlobSignature(other, l.Annotations), other, CheckSignature, Invalid, "does not match the certificate's key"},
		{"bundle, another blob", BlobBundle(good, "b", other), other, CheckIntegrity, Invalid, "it is the bundle of another file"},
		{"bundle naming another digest", BlobBundle(blobBundle(t, p, l, func(b *bundle.Bundle) { b.MessageSignature.MessageDigest.Digest = otherSum[:] }), "b", testBlob),
			testBlob, CheckIntegrity, Invalid, "another file"},
		{"bundle digest of another algorithm", BlobBundle(blobBundle(t, p, l, func(b *bundle.Bundle) { b.MessageSignature.MessageDigest.Algorithm = "SHA2_384" }), "b", testBlob),
			testBlob, CheckFormat, Unverifiable, "only SHA2_256"},
		{"bundle without signature", BlobBundle(blobBundle(t, p, l, func(b *bundle.Bundle) { b.MessageSignature.Signature = nil }), "b", testBlob),
			testBlob, CheckFormat, Invalid, "message signature is empty"},
		{"bundle, forged SET", BlobBundle(blobBundle(t, p, l, func(b *bundle.Bundle) {
			b.VerificationMaterial.TlogEntries[0].InclusionPromise.SignedEntryTimestamp[8] ^= 1
		}), "b", testBlob), testBlob, CheckTlog, Invalid, ""},
		{"bundle, entry of another signature", BlobBundle(blobBundle(t, p, l, func(b *bundle.Bundle) {
			b.MessageSignature.Signature = mustSig(t, BlobSignature(testBlob, p.layer(t, testBlob, p.logKey).Annotations))
		}), "b", testBlob), testBlob, CheckTlog, Invalid, "different signature"},
		{"cosign file without log entry", BlobSignature(testBlob, without(l.Annotations, oci.AnnotationBundle)), testBlob, CheckTlog, Unverifiable, "no transparency log bundle"},
		{"cosign file without signature", BlobSignature(testBlob, without(l.Annotations, oci.AnnotationSignature)), testBlob, CheckFormat, Invalid, "has no"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := verifyBlob(tc.s, tc.blob, opts)
			var ce *CheckError
			if !errors.As(err, &ce) || ce.Check != tc.check || ce.Class != tc.class || !strings.Contains(ce.Reason, tc.text) {
				t.Fatalf("want %s/%v %q, got %v", tc.check, tc.class, tc.text, err)
			}
		})
	}
	// Another identity is refused by policy.
	if _, err := verifyBlob(BlobBundle(good, "b", testBlob), testBlob, p.opts(Identity{Subject: "https://other", Issuer: p.issuer})); ClassOf(err) != NotAllowed {
		t.Errorf("another identity: %v", err)
	}
	// The image path does not verify a message signature: it is about no image.
	if _, err := VerifySigstoreBundle(good, BundleCheck{ImageDigest: testDigest}, opts, "b"); ClassOf(err) != Unverifiable {
		t.Errorf("message signature as an image bundle: %v", err)
	}
}

func mustSig(t *testing.T, s Signed) []byte {
	t.Helper()
	c, err := s.Content()
	if err != nil {
		t.Fatal(err)
	}
	return c.Signatures[0]
}

func without(m map[string]string, key string) map[string]string {
	m = maps.Clone(m)
	delete(m, key)
	return m
}

// FuzzBlobBundle: hostile bundles given for a blob never crash parsing or
// verification, and none verifies but for that blob's digest.
func FuzzBlobBundle(f *testing.F) {
	p := newPKI(f)
	l := p.layer(f, testBlob, p.logKey)
	f.Add(blobBundle(f, p, l, nil))
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","messageSignature":{"signature":"AA=="}}`))
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","messageSignature":{"messageDigest":{"algorithm":"SHA2_256","digest":"AA=="},"signature":""}}`))
	opts := p.opts(Identity{Subject: p.identity, Issuer: p.issuer})
	tr, pol := opts.Split(blobSubject(testBlob))
	f.Fuzz(func(t *testing.T, raw []byte) {
		v, err := Verify(context.Background(), BlobBundle(raw, "fuzz", testBlob), tr, pol)
		if err == nil && (v == nil || !v.TlogVerified || v.Certificate == nil) {
			t.Fatalf("accepted %q without a verified certificate and log entry", raw)
		}
	})
}
