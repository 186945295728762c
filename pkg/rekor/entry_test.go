package rekor_test

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/hallmark-dev/hallmark/pkg/payload"
	"github.com/hallmark-dev/hallmark/pkg/rekor"
	"github.com/hallmark-dev/hallmark/pkg/rekor/rekortest"
)

func TestHashedRekordCanonicalForm(t *testing.T) {
	k := rekortest.NewKey(t)
	artifact := []byte("hello, transparency")
	alg, digest, sig := rekortest.SignDigest(t, k, artifact)
	keyPEM := rekortest.PublicKeyPEM(t, k.Public())
	c, err := rekor.Canonicalize(rekortest.HashedRekord(alg, digest, sig, keyPEM))
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`{"apiVersion":"0.0.1","kind":"hashedrekord","spec":{"data":{"hash":{"algorithm":"sha256","value":"%s"}},"signature":{"content":"%s","publicKey":{"content":"%s"}}}}`,
		hex.EncodeToString(digest), base64.StdEncoding.EncodeToString(sig), base64.StdEncoding.EncodeToString(keyPEM))
	if string(c.Body) != want {
		t.Fatalf("canonical body\n got %s\nwant %s", c.Body, want)
	}
	if c.Kind != rekor.KindHashedRekord {
		t.Fatalf("kind %q", c.Kind)
	}
	h := sha256.Sum256(append([]byte{0}, c.Body...))
	if c.LeafHash != h {
		t.Fatalf("leaf hash %x, want SHA-256(0x00||body) %x", c.LeafHash, h)
	}

	// The same key in a differently formatted PEM (CRLF, a header, extra
	// whitespace) canonicalizes to the same leaf, so duplicates are found.
	block, _ := pem.Decode(keyPEM)
	block.Headers = map[string]string{"Comment": "exported by hand"}
	odd := bytes.ReplaceAll(pem.EncodeToMemory(block), []byte("\n"), []byte("\r\n"))
	odd = append([]byte("\n\n"), odd...)
	c2, err := rekor.Canonicalize(rekortest.HashedRekord(alg, digest, sig, odd))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c2.Body, c.Body) {
		t.Fatalf("reformatted PEM gave another canonical body:\n%s\n%s", c2.Body, c.Body)
	}
}

func TestHashedRekordKeyTypes(t *testing.T) {
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	rsa2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	p256 := rekortest.NewKey(t)
	root := rekortest.NewKey(t)
	rootCert, rootPEM := rekortest.Cert(t, root, nil, nil, true)
	_, leafPEM := rekortest.Cert(t, p256, rootCert, root, false)
	_, selfPEM := rekortest.Cert(t, p256, nil, nil, false)

	for _, tc := range []struct {
		name   string
		signer crypto.Signer
		key    []byte
	}{
		{"ecdsa-p256-pubkey", p256, rekortest.PublicKeyPEM(t, p256.Public())},
		{"ecdsa-p384-pubkey", p384, rekortest.PublicKeyPEM(t, p384.Public())},
		{"ecdsa-p521-pubkey", p521, rekortest.PublicKeyPEM(t, p521.Public())},
		{"rsa-2048-pubkey", rsa2048, rekortest.PublicKeyPEM(t, rsa2048.Public())},
		{"ed25519ph-pubkey", ed, rekortest.PublicKeyPEM(t, ed.Public())},
		{"certificate", p256, selfPEM},
		{"certificate-chain", p256, append(append([]byte{}, leafPEM...), rootPEM...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			alg, d, sig := rekortest.SignDigest(t, tc.signer, []byte("artifact "+tc.name))
			c, err := rekor.Canonicalize(rekortest.HashedRekord(alg, d, sig, tc.key))
			if err != nil {
				t.Fatal(err)
			}
			var body struct {
				Spec struct {
					Signature struct {
						PublicKey struct{ Content string } `json:"publicKey"`
					} `json:"signature"`
				} `json:"spec"`
			}
			if err := json.Unmarshal(c.Body, &body); err != nil {
				t.Fatal(err)
			}
			if got, _ := base64.StdEncoding.DecodeString(body.Spec.Signature.PublicKey.Content); !bytes.Equal(got, tc.key) {
				t.Fatalf("stored key/cert PEM differs from the canonical input:\n%s", got)
			}
		})
	}
}

func TestHashedRekordRejects(t *testing.T) {
	k := rekortest.NewKey(t)
	other := rekortest.NewKey(t)
	keyPEM := rekortest.PublicKeyPEM(t, k.Public())
	alg, d, sig := rekortest.SignDigest(t, k, []byte("artifact"))
	good := string(rekortest.HashedRekord(alg, d, sig, keyPEM))
	b64 := func(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	x25519, _ := ecdh.X25519().GenerateKey(rand.Reader)
	privDER := []byte("-----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----\n")
	_, d512, sig512 := func() (string, []byte, []byte) {
		h := make([]byte, 64)
		s, _ := k.Sign(rand.Reader, h, crypto.SHA512)
		return "sha512", h, s
	}()

	for _, tc := range []struct {
		name, entry string
		want        error
		msg         string
	}{
		{"not json", `{"apiVersion":`, rekor.ErrInvalidEntry, "not valid JSON"},
		{"trailing data", good + `{}`, rekor.ErrInvalidEntry, "after the JSON value"},
		{"unknown top-level field", strings.Replace(good, `"kind"`, `"extra":1,"kind"`, 1), rekor.ErrInvalidEntry, "unknown field"},
		{"missing kind", strings.Replace(good, `,"kind":"hashedrekord"`, ``, 1), rekor.ErrInvalidEntry, `"kind" is missing`},
		{"missing apiVersion", strings.Replace(good, `"apiVersion":"0.0.1",`, ``, 1), rekor.ErrInvalidEntry, `"apiVersion" is missing`},
		{"wrong kind", strings.Replace(good, `"hashedrekord"`, `"rekord"`, 1), rekor.ErrUnsupported, `entry kind "rekord"`},
		{"wrong apiVersion", strings.Replace(good, `"0.0.1"`, `"0.0.2"`, 1), rekor.ErrUnsupported, `apiVersion "0.0.2"`},
		{"null spec", `{"apiVersion":"0.0.1","kind":"hashedrekord","spec":null}`, rekor.ErrInvalidEntry, `"spec" is missing`},
		{"unknown spec field", strings.Replace(good, `"data":{`, `"data":{"content":"aGk=",`, 1), rekor.ErrInvalidEntry, "unknown field"},
		{"missing signature", string(rekortest.HashedRekord(alg, d, nil, keyPEM)), rekor.ErrInvalidEntry, "signature.content is missing"},
		{"bad base64 signature", strings.Replace(good, b64(sig), "!!!notbase64", 1), rekor.ErrInvalidEntry, "not valid standard base64"},
		{"bad base64 key", strings.Replace(good, b64(keyPEM), "%%%", 1), rekor.ErrInvalidEntry, "not valid standard base64"},
		{"key not PEM", string(rekortest.HashedRekord(alg, d, sig, []byte("not a key"))), rekor.ErrInvalidEntry, "not PEM"},
		{"private key PEM", string(rekortest.HashedRekord(alg, d, sig, privDER)), rekor.ErrUnsupported, `PEM block type "PRIVATE KEY"`},
		{"signature by another key", string(rekortest.HashedRekord(alg, d, sig, rekortest.PublicKeyPEM(t, other.Public()))), rekor.ErrInvalidEntry, "does not verify"},
		{"signature over another digest", string(rekortest.HashedRekord(alg, make([]byte, 32), sig, keyPEM)), rekor.ErrInvalidEntry, "does not verify"},
		{"P-256 with sha512 digest", string(rekortest.HashedRekord("sha512", d512, sig512, keyPEM)), rekor.ErrUnsupported, "with a sha512 digest is not allowed"},
		{"unknown hash algorithm", string(rekortest.HashedRekord("md5", d[:16], sig, keyPEM)), rekor.ErrUnsupported, `algorithm "md5"`},
		{"uppercase hash value", strings.Replace(good, hex.EncodeToString(d), strings.ToUpper(hex.EncodeToString(d)), 1), rekor.ErrInvalidEntry, "lowercase hex"},
		{"short hash value", string(rekortest.HashedRekord(alg, d[:31], sig, keyPEM)), rekor.ErrInvalidEntry, "64 lowercase hex"},
		{"RSA 1024 key", string(rekortest.HashedRekord(alg, d, sig, rekortest.PublicKeyPEM(t, rsa1024.Public()))), rekor.ErrUnsupported, "RSA key of 1024 bits"},
		{"ECDSA P-224 key", string(rekortest.HashedRekord(alg, d, sig, rekortest.PublicKeyPEM(t, p224.Public()))), rekor.ErrUnsupported, "curve P-224"},
		{"X25519 key", string(rekortest.HashedRekord(alg, d, sig, rekortest.PublicKeyPEM(t, x25519.PublicKey()))), rekor.ErrUnsupported, "public key type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := rekor.Canonicalize([]byte(tc.entry))
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %q does not say %q", err, tc.msg)
			}
		})
	}
}

func TestDSSECanonicalForm(t *testing.T) {
	k1, k2 := rekortest.NewKey(t), rekortest.NewKey(t)
	payload := []byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"x","digest":{"sha256":"00"}}],"predicateType":"https://slsa.dev/provenance/v1","predicate":{}}`)
	env := rekortest.SignEnvelope(t, payload, k1, k2)
	_, cert2 := rekortest.Cert(t, k2, nil, nil, false)
	c, err := rekor.Canonicalize(rekortest.DSSEEntry(env, rekortest.PublicKeyPEM(t, k1.Public()), cert2))
	if err != nil {
		t.Fatal(err)
	}
	var e testEnvelope
	if err := json.Unmarshal([]byte(env), &e); err != nil {
		t.Fatal(err)
	}
	type sv struct{ sig, ver string }
	sigs := []sv{
		{e.Signatures[0].Sig, base64.StdEncoding.EncodeToString(rekortest.PublicKeyPEM(t, k1.Public()))},
		{e.Signatures[1].Sig, base64.StdEncoding.EncodeToString(cert2)},
	}
	sort.Slice(sigs, func(i, j int) bool { return sigs[i].sig < sigs[j].sig })
	eh := sha256.Sum256([]byte(env))
	ph := sha256.Sum256(payload)
	want := fmt.Sprintf(`{"apiVersion":"0.0.1","kind":"dsse","spec":{"envelopeHash":{"algorithm":"sha256","value":"%x"},"payloadHash":{"algorithm":"sha256","value":"%x"},"signatures":[{"signature":"%s","verifier":"%s"},{"signature":"%s","verifier":"%s"}]}}`,
		eh, ph, sigs[0].sig, sigs[0].ver, sigs[1].sig, sigs[1].ver)
	if string(c.Body) != want {
		t.Fatalf("canonical body\n got %s\nwant %s", c.Body, want)
	}

	// Ed25519 verifiers verify the PAE itself (no prehash).
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	if _, err := rekor.Canonicalize(rekortest.DSSEEntry(rekortest.SignEnvelope(t, payload, ed), rekortest.PublicKeyPEM(t, ed.Public()))); err != nil {
		t.Fatalf("ed25519 dsse: %v", err)
	}
}

func TestDSSERejects(t *testing.T) {
	k1, k2 := rekortest.NewKey(t), rekortest.NewKey(t)
	payload := []byte(`{"_type":"https://in-toto.io/Statement/v1"}`)
	env := rekortest.SignEnvelope(t, payload, k1)
	env2 := rekortest.SignEnvelope(t, payload, k1, k2)
	pk1, pk2 := rekortest.PublicKeyPEM(t, k1.Public()), rekortest.PublicKeyPEM(t, k2.Public())
	many := make([][]byte, rekor.MaxDSSEVerifiers+1)
	for i := range many {
		many[i] = pk1
	}
	signers := make([]crypto.Signer, rekor.MaxDSSESignatures+1)
	for i := range signers {
		signers[i] = k1
	}
	manySigs := rekortest.SignEnvelope(t, payload, signers...)
	// Ed25519 hashes the whole PAE on every attempt: 8 signatures over a
	// 2 MiB payload are over the 16 MiB budget.
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	edSigners := make([]crypto.Signer, rekor.MaxDSSESignatures)
	for i := range edSigners {
		edSigners[i] = ed
	}
	edEnv := rekortest.SignEnvelope(t, bytes.Repeat([]byte("x"), 2<<20), edSigners...)
	huge := `{"payloadType":"x","payload":"` + strings.Repeat("A", rekor.MaxDSSEEnvelope) + `","signatures":[{"sig":"AA=="}]}`
	withComputed := strings.Replace(string(rekortest.DSSEEntry(env, pk1)), `"signatures":null`, `"payloadHash":{"algorithm":"sha256","value":"00"}`, 1)
	var e testEnvelope
	json.Unmarshal([]byte(env), &e)
	e.Payload = "***"
	badPayload, _ := json.Marshal(e)

	for _, tc := range []struct {
		name  string
		entry []byte
		want  error
		msg   string
	}{
		{"verifier of another key", rekortest.DSSEEntry(env, pk2), rekor.ErrInvalidEntry, "verifies none of the envelope signatures"},
		{"signature without verifier", rekortest.DSSEEntry(env2, pk1), rekor.ErrInvalidEntry, "verify with none of the verifiers"},
		{"server-computed field", []byte(withComputed), rekor.ErrInvalidEntry, "computed by the log"},
		{"envelope not JSON", rekortest.DSSEEntry("{", pk1), rekor.ErrInvalidEntry, "not a DSSE envelope"},
		{"no signatures", rekortest.DSSEEntry(`{"payloadType":"x","payload":"","signatures":[]}`, pk1), rekor.ErrInvalidEntry, "no signatures"},
		{"bad payload base64", rekortest.DSSEEntry(string(badPayload), pk1), rekor.ErrInvalidEntry, "payload is not base64"},
		{"no verifiers", rekortest.DSSEEntry(env), rekor.ErrInvalidEntry, "verifiers is missing"},
		{"verifier not PEM", rekortest.DSSEEntry(env, []byte("nope")), rekor.ErrInvalidEntry, "not PEM"},
		{"too many verifiers", rekortest.DSSEEntry(env, many...), rekor.ErrTooLarge, "9 verifiers; at most 8"},
		{"too many signatures", rekortest.DSSEEntry(manySigs, pk1), rekor.ErrTooLarge, "9 envelope signatures; at most 8"},
		{"Ed25519 hashing budget", rekortest.DSSEEntry(edEnv, rekortest.PublicKeyPEM(t, ed.Public())), rekor.ErrTooLarge, "Ed25519 verifiers must hash the whole"},
		{"envelope too large", rekortest.DSSEEntry(huge, pk1), rekor.ErrTooLarge, "bytes; at most 4194304 are accepted"},
		{"missing envelope", []byte(`{"apiVersion":"0.0.1","kind":"dsse","spec":{"proposedContent":{"verifiers":["aGk="]}}}`), rekor.ErrInvalidEntry, "envelope is missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := rekor.Canonicalize(tc.entry)
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %q does not say %q", err, tc.msg)
			}
		})
	}
}

// FuzzCanonicalize feeds arbitrary proposed entries to the parser: it must
// never panic, and whatever it accepts must be canonical JSON whose leaf
// hash it reports, and must canonicalize again to the same bytes.
func FuzzCanonicalize(f *testing.F) {
	k := rekortest.NewKey(f)
	alg, d, sig := rekortest.SignDigest(f, k, []byte("seed"))
	f.Add(rekortest.HashedRekord(alg, d, sig, rekortest.PublicKeyPEM(f, k.Public())))
	f.Add(rekortest.DSSEEntry(rekortest.SignEnvelope(f, []byte(`{"_type":"x"}`), k), rekortest.PublicKeyPEM(f, k.Public())))
	f.Add([]byte(`{"apiVersion":"0.0.1","kind":"hashedrekord","spec":{}}`))
	f.Add([]byte(`{"apiVersion":"0.0.1","kind":"dsse","spec":{"proposedContent":{"envelope":"{}","verifiers":[""]}}}`))
	f.Add([]byte(`{"kind":"rekord","apiVersion":"0.0.1","spec":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := rekor.Canonicalize(raw)
		if err != nil {
			if !errors.Is(err, rekor.ErrInvalidEntry) && !errors.Is(err, rekor.ErrUnsupported) && !errors.Is(err, rekor.ErrTooLarge) {
				t.Fatalf("error without a sentinel: %v", err)
			}
			return
		}
		if c.LeafHash != rekor.LeafHash(c.Body) {
			t.Fatal("leaf hash does not match the body")
		}
		if !json.Valid(c.Body) {
			t.Fatal("canonical body is not JSON")
		}
	})
}

// testEnvelope is a DSSE envelope as the tests read and alter it.
type testEnvelope = payload.Envelope
