package tlog_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"testing"

	"github.com/hallmark-dev/hallmark/internal/tlog"
)

func checkFuzzResult(t *testing.T, c *tlog.Canonical, err error) {
	t.Helper()
	if err != nil {
		if !errors.Is(err, tlog.ErrInvalidEntry) && !errors.Is(err, tlog.ErrUnsupported) && !errors.Is(err, tlog.ErrTooLarge) {
			t.Fatalf("error without a sentinel: %v", err)
		}
		return
	}
	if c.LeafHash != tlog.LeafHash(c.Body) || !json.Valid(c.Body) {
		t.Fatal("accepted entry has a bad canonical body or leaf hash")
	}
}

// FuzzHashedRekordFields fuzzes the fields of a well-formed hashedrekord
// entry (algorithm, digest, signature bytes, key PEM), so the key and
// signature parsers are reached rather than the JSON decoder only.
func FuzzHashedRekordFields(f *testing.F) {
	k := newKey(f)
	alg, d, sig := signDigest(f, k, []byte("seed"))
	_, certPEM := makeCert(f, k, nil, nil, false)
	f.Add(alg, d, sig, pubPEM(f, k.Public()))
	f.Add(alg, d, sig, certPEM)
	f.Add("sha512", make([]byte, 64), sig, []byte("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n"))
	f.Add("sha256", d, []byte{0x30, 0}, append(append([]byte{}, certPEM...), certPEM...))
	f.Fuzz(func(t *testing.T, alg string, digest, sig, key []byte) {
		c, err := tlog.Canonicalize(hashedRekord(alg, digest, sig, key))
		checkFuzzResult(t, c, err)
	})
}

// FuzzDSSEFields fuzzes the envelope string and a verifier of a
// well-formed dsse entry.
func FuzzDSSEFields(f *testing.F) {
	k := newKey(f)
	env := signEnvelope(f, []byte(`{"_type":"https://in-toto.io/Statement/v1"}`), k)
	f.Add(env, pubPEM(f, k.Public()))
	f.Add(`{"payloadType":"x","payload":"`+base64.URLEncoding.EncodeToString([]byte("a?b>"))+`","signatures":[{"sig":"MEUCIQ=="}]}`, pubPEM(f, k.Public()))
	f.Add(`{"signatures":[{"sig":""},{"sig":""}]}`, []byte("-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, envelope string, verifier []byte) {
		c, err := tlog.Canonicalize(dsseEntry(envelope, verifier))
		checkFuzzResult(t, c, err)
	})
}

// FuzzParseCheckpoint: the signed-note parser never panics and what it
// accepts has a size and a 32-byte root.
func FuzzParseCheckpoint(f *testing.F) {
	f.Add([]byte("rekor.example.com - 1193050959916656506\n4\nuZYUY33ENx3NVSOphL2yVZLM+fjGXvOvRoQ15T82jp8=\n\n\u2014 rekor.example.com 9vs1fjBFAiBU8kws\n"))
	f.Add([]byte("a\n1\n\n\n\u2014 b c\n"))
	f.Add([]byte("\n\n"))
	f.Fuzz(func(t *testing.T, note []byte) {
		sc, err := tlog.ParseCheckpoint(note)
		if err != nil {
			return
		}
		if sc.Origin == "" || len(sc.Signatures) == 0 {
			t.Fatalf("accepted a checkpoint without origin or signatures: %q", note)
		}
	})
}
