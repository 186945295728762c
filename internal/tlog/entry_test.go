package tlog_test

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

	"github.com/hallmark-dev/hallmark/internal/tlog"
)

func TestHashedRekordCanonicalForm(t *testing.T) {
	k := newKey(t)
	artifact := []byte("hello, transparency")
	alg, digest, sig := signDigest(t, k, artifact)
	keyPEM := pubPEM(t, k.Public())
	c, err := tlog.Canonicalize(hashedRekord(alg, digest, sig, keyPEM))
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`{"apiVersion":"0.0.1","kind":"hashedrekord","spec":{"data":{"hash":{"algorithm":"sha256","value":"%s"}},"signature":{"content":"%s","publicKey":{"content":"%s"}}}}`,
		hex.EncodeToString(digest), base64.StdEncoding.EncodeToString(sig), base64.StdEncoding.EncodeToString(keyPEM))
	if string(c.Body) != want {
		t.Fatalf("canonical body\n got %s\nwant %s", c.Body, want)
	}
	if c.Kind != tlog.KindHashedRekord {
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
	c2, err := tlog.Canonicalize(hashedRekord(alg, digest, sig, odd))
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
	p256 := newKey(t)
	root := newKey(t)
	rootCert, rootPEM := makeCert(t, root, nil, nil, true)
	_, leafPEM := makeCert(t, p256, rootCert, root, false)
	_, selfPEM := makeCert(t, p256, nil, nil, false)

	for _, tc := range []struct {
		name   string
		signer crypto.Signer
		key    []byte
	}{
		{"ecdsa-p256-pubkey", p256, pubPEM(t, p256.Public())},
		{"ecdsa-p384-pubkey", p384, pubPEM(t, p384.Public())},
		{"ecdsa-p521-pubkey", p521, pubPEM(t, p521.Public())},
		{"rsa-2048-pubkey", rsa2048, pubPEM(t, rsa2048.Public())},
		{"ed25519ph-pubkey", ed, pubPEM(t, ed.Public())},
		{"certificate", p256, selfPEM},
		{"certificate-chain", p256, append(append([]byte{}, leafPEM...), rootPEM...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			alg, d, sig := signDigest(t, tc.signer, []byte("artifact "+tc.name))
			c, err := tlog.Canonicalize(hashedRekord(alg, d, sig, tc.key))
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
	k := newKey(t)
	other := newKey(t)
	keyPEM := pubPEM(t, k.Public())
	alg, d, sig := signDigest(t, k, []byte("artifact"))
	good := string(hashedRekord(alg, d, sig, keyPEM))
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
		{"not json", `{"apiVersion":`, tlog.ErrInvalidEntry, "not valid JSON"},
		{"trailing data", good + `{}`, tlog.ErrInvalidEntry, "after the JSON value"},
		{"unknown top-level field", strings.Replace(good, `"kind"`, `"extra":1,"kind"`, 1), tlog.ErrInvalidEntry, "unknown field"},
		{"missing kind", strings.Replace(good, `,"kind":"hashedrekord"`, ``, 1), tlog.ErrInvalidEntry, `"kind" is missing`},
		{"missing apiVersion", strings.Replace(good, `"apiVersion":"0.0.1",`, ``, 1), tlog.ErrInvalidEntry, `"apiVersion" is missing`},
		{"wrong kind", strings.Replace(good, `"hashedrekord"`, `"rekord"`, 1), tlog.ErrUnsupported, `entry kind "rekord"`},
		{"wrong apiVersion", strings.Replace(good, `"0.0.1"`, `"0.0.2"`, 1), tlog.ErrUnsupported, `apiVersion "0.0.2"`},
		{"null spec", `{"apiVersion":"0.0.1","kind":"hashedrekord","spec":null}`, tlog.ErrInvalidEntry, `"spec" is missing`},
		{"unknown spec field", strings.Replace(good, `"data":{`, `"data":{"content":"aGk=",`, 1), tlog.ErrInvalidEntry, "unknown field"},
		{"missing signature", string(hashedRekord(alg, d, nil, keyPEM)), tlog.ErrInvalidEntry, "signature.content is missing"},
		{"bad base64 signature", strings.Replace(good, b64(sig), "!!!notbase64", 1), tlog.ErrInvalidEntry, "not valid standard base64"},
		{"bad base64 key", strings.Replace(good, b64(keyPEM), "%%%", 1), tlog.ErrInvalidEntry, "not valid standard base64"},
		{"key not PEM", string(hashedRekord(alg, d, sig, []byte("not a key"))), tlog.ErrInvalidEntry, "not PEM"},
		{"private key PEM", string(hashedRekord(alg, d, sig, privDER)), tlog.ErrUnsupported, `PEM block type "PRIVATE KEY"`},
		{"signature by another key", string(hashedRekord(alg, d, sig, pubPEM(t, other.Public()))), tlog.ErrInvalidEntry, "does not verify"},
		{"signature over another digest", string(hashedRekord(alg, make([]byte, 32), sig, keyPEM)), tlog.ErrInvalidEntry, "does not verify"},
		{"P-256 with sha512 digest", string(hashedRekord("sha512", d512, sig512, keyPEM)), tlog.ErrUnsupported, "with a sha512 digest is not allowed"},
		{"unknown hash algorithm", string(hashedRekord("md5", d[:16], sig, keyPEM)), tlog.ErrUnsupported, `algorithm "md5"`},
		{"uppercase hash value", strings.Replace(good, hex.EncodeToString(d), strings.ToUpper(hex.EncodeToString(d)), 1), tlog.ErrInvalidEntry, "lowercase hex"},
		{"short hash value", string(hashedRekord(alg, d[:31], sig, keyPEM)), tlog.ErrInvalidEntry, "64 lowercase hex"},
		{"RSA 1024 key", string(hashedRekord(alg, d, sig, pubPEM(t, rsa1024.Public()))), tlog.ErrUnsupported, "RSA key of 1024 bits"},
		{"ECDSA P-224 key", string(hashedRekord(alg, d, sig, pubPEM(t, p224.Public()))), tlog.ErrUnsupported, "curve P-224"},
		{"X25519 key", string(hashedRekord(alg, d, sig, pubPEM(t, x25519.PublicKey()))), tlog.ErrUnsupported, "public key type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tlog.Canonicalize([]byte(tc.entry))
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
	k1, k2 := newKey(t), newKey(t)
	payload := []byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"x","digest":{"sha256":"00"}}],"predicateType":"https://slsa.dev/provenance/v1","predicate":{}}`)
	env := signEnvelope(t, payload, k1, k2)
	_, cert2 := makeCert(t, k2, nil, nil, false)
	c, err := tlog.Canonicalize(dsseEntry(env, pubPEM(t, k1.Public()), cert2))
	if err != nil {
		t.Fatal(err)
	}
	var e testEnvelope
	if err := json.Unmarshal([]byte(env), &e); err != nil {
		t.Fatal(err)
	}
	type sv struct{ sig, ver string }
	sigs := []sv{
		{e.Signatures[0].Sig, base64.StdEncoding.EncodeToString(pubPEM(t, k1.Public()))},
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
	if _, err := tlog.Canonicalize(dsseEntry(signEnvelope(t, payload, ed), pubPEM(t, ed.Public()))); err != nil {
		t.Fatalf("ed25519 dsse: %v", err)
	}
}

func TestDSSERejects(t *testing.T) {
	k1, k2 := newKey(t), newKey(t)
	payload := []byte(`{"_type":"https://in-toto.io/Statement/v1"}`)
	env := signEnvelope(t, payload, k1)
	env2 := signEnvelope(t, payload, k1, k2)
	pk1, pk2 := pubPEM(t, k1.Public()), pubPEM(t, k2.Public())
	many := make([][]byte, 17)
	for i := range many {
		many[i] = pk1
	}
	withComputed := strings.Replace(string(dsseEntry(env, pk1)), `"signatures":null`, `"payloadHash":{"algorithm":"sha256","value":"00"}`, 1)
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
		{"verifier of another key", dsseEntry(env, pk2), tlog.ErrInvalidEntry, "verifies none of the envelope signatures"},
		{"signature without verifier", dsseEntry(env2, pk1), tlog.ErrInvalidEntry, "verify with none of the verifiers"},
		{"server-computed field", []byte(withComputed), tlog.ErrInvalidEntry, "computed by the log"},
		{"envelope not JSON", dsseEntry("{", pk1), tlog.ErrInvalidEntry, "not a DSSE envelope"},
		{"no signatures", dsseEntry(`{"payloadType":"x","payload":"","signatures":[]}`, pk1), tlog.ErrInvalidEntry, "no signatures"},
		{"bad payload base64", dsseEntry(string(badPayload), pk1), tlog.ErrInvalidEntry, "payload is not base64"},
		{"no verifiers", dsseEntry(env), tlog.ErrInvalidEntry, "verifiers is missing"},
		{"verifier not PEM", dsseEntry(env, []byte("nope")), tlog.ErrInvalidEntry, "not PEM"},
		{"too many verifiers", dsseEntry(env, many...), tlog.ErrTooLarge, "at most 16"},
		{"missing envelope", []byte(`{"apiVersion":"0.0.1","kind":"dsse","spec":{"proposedContent":{"verifiers":["aGk="]}}}`), tlog.ErrInvalidEntry, "envelope is missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tlog.Canonicalize(tc.entry)
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
	k := newKey(f)
	alg, d, sig := signDigest(f, k, []byte("seed"))
	f.Add(hashedRekord(alg, d, sig, pubPEM(f, k.Public())))
	f.Add(dsseEntry(signEnvelope(f, []byte(`{"_type":"x"}`), k), pubPEM(f, k.Public())))
	f.Add([]byte(`{"apiVersion":"0.0.1","kind":"hashedrekord","spec":{}}`))
	f.Add([]byte(`{"apiVersion":"0.0.1","kind":"dsse","spec":{"proposedContent":{"envelope":"{}","verifiers":[""]}}}`))
	f.Add([]byte(`{"kind":"rekord","apiVersion":"0.0.1","spec":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := tlog.Canonicalize(raw)
		if err != nil {
			if !errors.Is(err, tlog.ErrInvalidEntry) && !errors.Is(err, tlog.ErrUnsupported) && !errors.Is(err, tlog.ErrTooLarge) {
				t.Fatalf("error without a sentinel: %v", err)
			}
			return
		}
		if c.LeafHash != tlog.LeafHash(c.Body) {
			t.Fatal("leaf hash does not match the body")
		}
		if !json.Valid(c.Body) {
			t.Fatal("canonical body is not JSON")
		}
	})
}
