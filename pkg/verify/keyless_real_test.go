package verify_test

// Tests against material captured from a real Hallmark server and real
// cosign v2.6.5 / v3.1.3 (testdata/keyless/SOURCE).

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hallmark-dev/hallmark/pkg/bundle"
	"github.com/hallmark-dev/hallmark/pkg/oci"
	"github.com/hallmark-dev/hallmark/pkg/rekor"
	"github.com/hallmark-dev/hallmark/pkg/root"
	"github.com/hallmark-dev/hallmark/pkg/verify"
)

const (
	realServer   = "http://127.0.0.1:5077"
	realIdentity = realServer + "/grp/app//.gitlab-ci.yml@refs/heads/main"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "keyless", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func realMaterial(t testing.TB) *root.Material {
	t.Helper()
	tr, err := root.Parse(readTestdata(t, "trusted_root.json"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := tr.Material()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func realOptions(t testing.TB, ids ...verify.Identity) verify.Options {
	m := realMaterial(t)
	if ids == nil {
		ids = []verify.Identity{{Subject: realIdentity, Issuer: realServer}}
	}
	return verify.Options{TlogKeys: m.TlogKeys, Cert: &verify.CertOptions{CAs: m.CAs, CTLogKeys: m.CTLogKeys, Identities: ids}}
}

// realLayer is cosign v2's keyless signature layer.
func realLayer(t testing.TB) verify.Layer {
	t.Helper()
	var m struct {
		Layers []struct {
			MediaType   string            `json:"mediaType"`
			Digest      string            `json:"digest"`
			Annotations map[string]string `json:"annotations"`
		} `json:"layers"`
	}
	if err := json.Unmarshal(readTestdata(t, "cosign2-signature.manifest.json"), &m); err != nil {
		t.Fatal(err)
	}
	l := m.Layers[len(m.Layers)-1]
	return verify.Layer{Digest: l.Digest, MediaType: l.MediaType, Payload: readTestdata(t, "cosign2-signature.payload.json"), Annotations: l.Annotations}
}

func checkErr(t *testing.T, err error, check string, text string) {
	t.Helper()
	var ce *verify.CheckError
	if !errors.As(err, &ce) || ce.Check != check || !strings.Contains(err.Error(), text) {
		t.Fatalf("got %v; want the %s check failing with %q", err, check, text)
	}
}

func TestRealCosignV2KeylessSignature(t *testing.T) {
	subject := string(readTestdata(t, "cosign2-signature.subject"))
	l := realLayer(t)
	v, err := verify.VerifyLayer(l, subject, realOptions(t))
	if err != nil {
		t.Fatalf("cosign v2's keyless signature: %v", err)
	}
	if !v.TlogVerified || v.Claims.Optional["Subject"] != realIdentity || v.Claims.Optional["Issuer"] != realServer ||
		v.Claims.Optional["1.3.6.1.4.1.57264.1.1"] != realServer || v.Claims.Optional["tag"] != "v2" || v.Bundle.Payload.LogIndex != 1 {
		t.Errorf("verified: %+v", v.Claims.Optional)
	}
	// Output keys are cosign's, in its order.
	b, _ := json.Marshal(v.Claims)
	if !bytes.Contains(b, []byte(`"optional":{"1.3.6.1.4.1.57264.1.1":"`+realServer+`","Bundle":{"SignedEntryTimestamp":"`)) ||
		!bytes.HasSuffix(b, []byte(`"Issuer":"`+realServer+`","Subject":"`+realIdentity+`","tag":"v2"}}`)) {
		t.Errorf("output: %s", b)
	}

	t.Run("identity regexp", func(t *testing.T) {
		if _, err := verify.VerifyLayer(l, subject, realOptions(t, verify.Identity{SubjectRegexp: "grp/app/", IssuerRegexp: "127\\.0"})); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("identity mismatch", func(t *testing.T) {
		_, err := verify.VerifyLayer(l, subject, realOptions(t, verify.Identity{Subject: realServer + "/grp/other//.gitlab-ci.yml@refs/heads/main", Issuer: realServer}))
		checkErr(t, err, verify.CheckIdentity, "got subjects ["+realIdentity+"] with issuer "+realServer)
	})
	t.Run("issuer mismatch", func(t *testing.T) {
		_, err := verify.VerifyLayer(l, subject, realOptions(t, verify.Identity{Subject: realIdentity, Issuer: "https://gitlab.com"}))
		checkErr(t, err, verify.CheckIdentity, "none of the expected identities matched")
	})
	t.Run("untrusted CA", func(t *testing.T) {
		o := realOptions(t)
		o.Cert.CAs = []root.CA{{Roots: x509.NewCertPool()}}
		_, err := verify.VerifyLayer(l, subject, o)
		checkErr(t, err, verify.CheckCertificate, "does not chain to a trusted root")
	})
	t.Run("unknown CT log", func(t *testing.T) {
		o := realOptions(t)
		o.Cert.CTLogKeys = nil
		_, err := verify.VerifyLayer(l, subject, o)
		checkErr(t, err, verify.CheckSCT, "not in the trusted root")
		o.Cert.IgnoreSCT = true
		if _, err := verify.VerifyLayer(l, subject, o); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("another log key", func(t *testing.T) {
		o := realOptions(t)
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		for id := range o.TlogKeys {
			o.TlogKeys = map[string]root.LogKey{id: {Key: &k.PublicKey}}
		}
		_, err := verify.VerifyLayer(l, subject, o)
		checkErr(t, err, verify.CheckTlog, "signed entry timestamp does not verify")
		if !errors.Is(err, rekor.ErrSET) {
			t.Errorf("not ErrSET: %v", err)
		}
	})
	t.Run("tampered entry", func(t *testing.T) {
		bad := l
		bad.Annotations = map[string]string{}
		for k, v := range l.Annotations {
			bad.Annotations[k] = v
		}
		var b rekor.Bundle
		json.Unmarshal([]byte(l.Annotations[oci.AnnotationBundle]), &b)
		b.Payload.IntegratedTime++
		raw, _ := json.Marshal(b)
		bad.Annotations[oci.AnnotationBundle] = string(raw)
		_, err := verify.VerifyLayer(bad, subject, realOptions(t))
		checkErr(t, err, verify.CheckTlog, "signed entry timestamp does not verify")
	})
	t.Run("digest claim", func(t *testing.T) {
		_, err := verify.VerifyLayer(l, "sha256:"+strings.Repeat("0", 64), realOptions(t))
		checkErr(t, err, verify.CheckDigestClaim, "not the image")
	})
}

// leafAndIssuer returns cosign v2's signing certificate and its issuer.
func leafAndIssuer(t *testing.T) (*x509.Certificate, *x509.Certificate) {
	t.Helper()
	l := realLayer(t)
	leaf, err := verify.ParseCertificatePEM([]byte(l.Annotations[oci.AnnotationCertificate]))
	if err != nil {
		t.Fatal(err)
	}
	chain, err := verify.ParseCertificatesPEM([]byte(l.Annotations[oci.AnnotationChain]))
	if err != nil || len(chain) != 2 {
		t.Fatalf("chain: %v %d", err, len(chain))
	}
	return leaf, chain[0]
}

func TestRealEmbeddedSCT(t *testing.T) {
	leaf, issuer := leafAndIssuer(t)
	m := realMaterial(t)
	if err := verify.VerifyEmbeddedSCT(leaf, issuer, m.CTLogKeys); err != nil {
		t.Fatalf("the CA's embedded SCT: %v", err)
	}
	// An SCT whose signature was altered (one bit of the last byte of the
	// SCT list extension, inside the ECDSA signature).
	oidSCT := asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 4, 2}
	var ext []byte
	for _, e := range leaf.Extensions {
		if e.Id.Equal(oidSCT) {
			ext = e.Value
		}
	}
	i := bytes.Index(leaf.Raw, ext)
	if ext == nil || i < 0 {
		t.Fatal("no SCT extension")
	}
	raw := bytes.Clone(leaf.Raw)
	raw[i+len(ext)-1] ^= 1
	bad, err := x509.ParseCertificate(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := verify.VerifyEmbeddedSCT(bad, issuer, m.CTLogKeys); err == nil || !errors.Is(err, verify.ErrSCT) || !strings.Contains(err.Error(), "does not verify") {
		t.Errorf("tampered SCT: %v", err)
	}
	// A malformed SCT list (its TLS length says more than there is).
	var rv asn1.RawValue
	if _, err := asn1.Unmarshal(ext, &rv); err != nil {
		t.Fatal(err)
	}
	raw = bytes.Clone(leaf.Raw)
	raw[i+len(rv.FullBytes)-len(rv.Bytes)] ^= 0x80
	if bad, err = x509.ParseCertificate(raw); err != nil {
		t.Fatal(err)
	}
	if err := verify.VerifyEmbeddedSCT(bad, issuer, m.CTLogKeys); !errors.Is(err, verify.ErrSCT) || !strings.Contains(err.Error(), "malformed SCT list") {
		t.Errorf("malformed SCT list: %v", err)
	}
	// The right SCT but checked against another issuer (the root).
	_, root := leafAndIssuer(t)
	if err := verify.VerifyEmbeddedSCT(leaf, root, nil); err == nil {
		t.Error("no CT keys: accepted")
	}
}

func TestRealInclusionProof(t *testing.T) {
	raw := readTestdata(t, "rekor-entry-1.json")
	e, err := rekor.ParseEntryResponse(raw)
	if err != nil {
		t.Fatal(err)
	}
	keys := realMaterial(t).TlogKeys
	if err := verify.VerifySET(e, keys); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if err := verify.VerifyInclusion(e, keys); err != nil {
		t.Fatalf("inclusion: %v", err)
	}
	l := realLayer(t)
	sig, _ := base64.StdEncoding.DecodeString(l.Annotations[oci.AnnotationSignature])
	leaf, _ := leafAndIssuer(t)
	h := sha256.Sum256(l.Payload)
	if err := verify.VerifyLoggedSignature(e, keys, h[:], sig, leaf.Raw, true); err != nil {
		t.Fatalf("logged signature: %v", err)
	}
	if err := verify.VerifyLoggedSignature(e, keys, make([]byte, 32), sig, leaf.Raw, true); !errors.Is(err, rekor.ErrEntryMismatch) {
		t.Errorf("another payload: %v", err)
	}
	mutate := func(name string, fn func(p *rekor.InclusionProof), want string) {
		t.Run(name, func(t *testing.T) {
			c := *e
			p := *e.Proof
			p.Hashes = append([][]byte{}, p.Hashes...)
			p.RootHash = bytes.Clone(p.RootHash)
			fn(&p)
			c.Proof = &p
			err := verify.VerifyInclusion(&c, keys)
			if !errors.Is(err, rekor.ErrInclusionProof) || !strings.Contains(err.Error(), want) {
				t.Errorf("got %v, want %q", err, want)
			}
		})
	}
	mutate("wrong hash", func(p *rekor.InclusionProof) { p.Hashes[0] = bytes.Repeat([]byte{1}, 32) }, "is not at index 1")
	mutate("wrong index", func(p *rekor.InclusionProof) { p.LogIndex = 2 }, "is not at index 2")
	mutate("root of another tree", func(p *rekor.InclusionProof) { p.RootHash[0] ^= 1 }, "is not at index")
	mutate("index outside the tree", func(p *rekor.InclusionProof) { p.LogIndex = 9 }, "not inside a tree of size 5")
	mutate("unsigned checkpoint", func(p *rekor.InclusionProof) {
		p.Checkpoint = strings.Replace(p.Checkpoint, "\n5\n", "\n6\n", 1)
	}, "not signed by the log's key")
	mutate("no checkpoint", func(p *rekor.InclusionProof) { p.Checkpoint = "" }, "no signed checkpoint")
}

func TestRealCosignV3Bundle(t *testing.T) {
	raw := readTestdata(t, "cosign3-bundle.json")
	subject := string(readTestdata(t, "cosign3-bundle.subject"))
	check := verify.BundleCheck{ImageDigest: subject, PredicateType: "https://sigstore.dev/cosign/sign/v1", RefName: "127.0.0.1:5077/grp/app@" + subject}
	v, err := verify.VerifySigstoreBundle(raw, check, realOptions(t), "bundle")
	if err != nil {
		t.Fatalf("cosign v3 bundle: %v", err)
	}
	b, _ := json.Marshal(v.Claims)
	want := `{"critical":{"identity":{"docker-reference":"127.0.0.1:5077/grp/app@` + subject + `"},"image":{"docker-manifest-digest":"` + subject +
		`"},"type":"https://sigstore.dev/cosign/sign/v1"},"optional":{"foo":"bar","tag":"v1"}}`
	if string(b) != want || !v.TlogVerified || v.LogEntry == nil || v.LogEntry.Proof == nil {
		t.Errorf("claims %s\nwant   %s", b, want)
	}
	o := realOptions(t)
	o.Annotations = map[string]string{"tag": "v1"}
	if _, err := verify.VerifySigstoreBundle(raw, check, o, "bundle"); err != nil {
		t.Errorf("-a tag=v1: %v", err)
	}
	o.Annotations = map[string]string{"tag": "v2"}
	_, err = verify.VerifySigstoreBundle(raw, check, o, "bundle")
	checkErr(t, err, verify.CheckAnnotation, `annotation "tag" is "v1"`)

	edit := func(fn func(b map[string]any)) []byte {
		var b map[string]any
		json.Unmarshal(raw, &b)
		fn(b)
		out, _ := json.Marshal(b)
		return out
	}
	tlog := func(b map[string]any) map[string]any {
		return b["verificationMaterial"].(map[string]any)["tlogEntries"].([]any)[0].(map[string]any)
	}
	cases := []struct {
		name  string
		raw   []byte
		check verify.BundleCheck
		opts  verify.Options
		c     string
		text  string
	}{
		{"identity mismatch", raw, check, realOptions(t, verify.Identity{Subject: "x", Issuer: realServer}), verify.CheckIdentity, "none of the expected identities"},
		{"another image", raw, verify.BundleCheck{ImageDigest: "sha256:" + strings.Repeat("1", 64)}, realOptions(t), verify.CheckDigestClaim, "not about the image"},
		{"another predicate", raw, verify.BundleCheck{ImageDigest: subject, PredicateType: "https://slsa.dev/provenance/v1"}, realOptions(t), verify.CheckPayload, "predicate type"},
		{"tampered signature", edit(func(b map[string]any) {
			s := b["dsseEnvelope"].(map[string]any)["signatures"].([]any)[0].(map[string]any)
			sig, _ := base64.StdEncoding.DecodeString(s["sig"].(string))
			sig[len(sig)-1] ^= 1
			s["sig"] = base64.StdEncoding.EncodeToString(sig)
		}), check, realOptions(t), verify.CheckSignature, "no DSSE signature verifies"},
		{"tampered SET", edit(func(b map[string]any) { tlog(b)["integratedTime"] = "1795598275" }), check, realOptions(t), verify.CheckTlog, "signed entry timestamp does not verify"},
		{"proof for another tree", edit(func(b map[string]any) {
			p := tlog(b)["inclusionProof"].(map[string]any)
			p["treeSize"] = "2"
			p["hashes"] = []any{base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))}
		}), check, realOptions(t), verify.CheckTlog, "inclusion proof does not verify"},
		{"no log entry", edit(func(b map[string]any) { b["verificationMaterial"].(map[string]any)["tlogEntries"] = []any{} }), check, realOptions(t), verify.CheckTlog, "no transparency log entry"},
		{"not a bundle", []byte(`{"mediaType":"application/json"}`), check, realOptions(t), verify.CheckFormat, "not a sigstore bundle"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := verify.VerifySigstoreBundle(tc.raw, tc.check, tc.opts, "bundle")
			checkErr(t, err, tc.c, tc.text)
		})
	}
}

// FuzzSigstoreBundle: hostile bundles never crash parsing or verification
// and never verify unless they are the real one.
func FuzzSigstoreBundle(f *testing.F) {
	raw := readTestdata(f, "cosign3-bundle.json")
	f.Add(raw)
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","dsseEnvelope":{"payload":"e30=","payloadType":"application/vnd.in-toto+json","signatures":[{"sig":"AA=="}]}}`))
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"tlogEntries":[{"logIndex":"x"}]}}`))
	subject := string(readTestdata(f, "cosign3-bundle.subject"))
	opts := realOptions(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		sb, err := bundle.Parse(b)
		if err == nil && sb == nil {
			t.Fatal("nil bundle without error")
		}
		v, err := verify.VerifySigstoreBundle(b, verify.BundleCheck{ImageDigest: subject}, opts, "fuzz")
		if err == nil && v == nil {
			t.Fatal("nil result without error")
		}
	})
}

// FuzzCertificateAnnotations: hostile certificate and chain annotations
// never crash the certificate helpers.
func FuzzCertificateAnnotations(f *testing.F) {
	l := realLayer(f)
	f.Add([]byte(l.Annotations[oci.AnnotationCertificate]), []byte(l.Annotations[oci.AnnotationChain]))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), []byte{})
	opts := realOptions(f).Cert
	f.Fuzz(func(t *testing.T, certPEM, chainPEM []byte) {
		c, err := verify.ParseCertificatePEM(certPEM)
		if err != nil {
			return
		}
		chain, err := verify.ParseCertificatesPEM(chainPEM)
		if err != nil {
			return
		}
		if verified, err := verify.VerifyChain(c, chain, opts.CAs); err == nil {
			_ = verified.VerifySCT(opts.CTLogKeys)
			_ = verify.MatchIdentity(c, opts.Identities)
		}
		_ = verify.CheckProvenance(c, map[string]any{"com.gitlab.ci.commit.sha": "x", "com.gitlab.ci.project.path": "a/b"})
	})
}

// FuzzLogEntry: hostile log entries (body, proof) never crash the checks.
func FuzzLogEntry(f *testing.F) {
	raw := readTestdata(f, "rekor-entry-1.json")
	f.Add(raw)
	f.Add([]byte(`{"x":{"body":"e30=","logIndex":0,"verification":{"inclusionProof":{"hashes":["zz"]}}}}`))
	keys := realMaterial(f).TlogKeys
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := rekor.ParseEntryResponse(b)
		if err != nil {
			return
		}
		verify.VerifySET(e, keys)
		verify.VerifyInclusion(e, keys)
		verify.VerifyLoggedSignature(e, keys, make([]byte, 32), []byte{1}, []byte{2}, false)
	})
}
