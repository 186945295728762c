package rekor_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"testing"

	"github.com/hallmark-dev/hallmark/pkg/rekor"
	"github.com/hallmark-dev/hallmark/pkg/rekor/rekortest"
)

func checkFuzzResult(t *testing.T, c *rekor.Canonical, err error) {
	t.Helper()
	if err != nil {
		if !errors.Is(err, rekor.ErrInvalidEntry) && !errors.Is(err, rekor.ErrUnsupported) && !errors.Is(err, rekor.ErrTooLarge) {
			t.Fatalf("error without a sentinel: %v", err)
		}
		return
	}
	if c.LeafHash != rekor.LeafHash(c.Body) || !json.Valid(c.Body) {
		t.Fatal("accepted entry has a bad canonical body or leaf hash")
	}
}

// FuzzHashedRekordFields fuzzes the fields of a well-formed hashedrekord
// entry (algorithm, digest, signature bytes, key PEM), so the key and
// signature parsers are reached rather than the JSON decoder only.
func FuzzHashedRekordFields(f *testing.F) {
	k := rekortest.NewKey(f)
	alg, d, sig := rekortest.SignDigest(f, k, []byte("seed"))
	_, certPEM := rekortest.Cert(f, k, nil, nil, false)
	f.Add(alg, d, sig, rekortest.PublicKeyPEM(f, k.Public()))
	f.Add(alg, d, sig, certPEM)
	f.Add("sha512", make([]byte, 64), sig, []byte("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n"))
	f.Add("sha256", d, []byte{0x30, 0}, append(append([]byte{}, certPEM...), certPEM...))
	f.Fuzz(func(t *testing.T, alg string, digest, sig, key []byte) {
		c, err := rekor.Canonicalize(rekortest.HashedRekord(alg, digest, sig, key))
		checkFuzzResult(t, c, err)
	})
}

// FuzzDSSEFields fuzzes the envelope string and a verifier of a
// well-formed dsse entry.
func FuzzDSSEFields(f *testing.F) {
	k := rekortest.NewKey(f)
	env := rekortest.SignEnvelope(f, []byte(`{"_type":"https://in-toto.io/Statement/v1"}`), k)
	f.Add(env, rekortest.PublicKeyPEM(f, k.Public()))
	f.Add(`{"payloadType":"x","payload":"`+base64.URLEncoding.EncodeToString([]byte("a?b>"))+`","signatures":[{"sig":"MEUCIQ=="}]}`, rekortest.PublicKeyPEM(f, k.Public()))
	f.Add(`{"signatures":[{"sig":""},{"sig":""}]}`, []byte("-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, envelope string, verifier []byte) {
		c, err := rekor.Canonicalize(rekortest.DSSEEntry(envelope, verifier))
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
		sc, err := rekor.ParseCheckpoint(note)
		if err != nil {
			return
		}
		if sc.Origin == "" || len(sc.Signatures) == 0 {
			t.Fatalf("accepted a checkpoint without origin or signatures: %q", note)
		}
	})
}

// FuzzVerifyCheckpoint: a hostile note never verifies with a key that did
// not sign it.
func FuzzVerifyCheckpoint(f *testing.F) {
	e, key := realEntry(f)
	f.Add([]byte(e.Proof.Checkpoint))
	f.Add([]byte("origin\n1\nAAAA\n\n\u2014 origin AAAA\n"))
	other := rekortest.NewKey(f)
	f.Fuzz(func(t *testing.T, note []byte) {
		rekor.VerifyCheckpoint(note, key)
		if _, err := rekor.VerifyCheckpoint(note, &other.PublicKey); err == nil {
			t.Fatal("a checkpoint verified with a key that never signed")
		}
	})
}

// FuzzParseEntryResponse: hostile entry responses never crash the parser,
// nor the SET and proof checks of what it accepts, which never verify for
// a key that signed nothing.
func FuzzParseEntryResponse(f *testing.F) {
	f.Add(readTestdata(f, "rekor-entry-1.json"))
	f.Add([]byte(`{"x":{"body":"e30=","logIndex":0,"verification":{"inclusionProof":{"hashes":["zz"]}}}}`))
	f.Add([]byte(`{"x":{"body":"e30=","logIndex":0,"verification":{"signedEntryTimestamp":"AA=="}}}`))
	other := rekortest.NewKey(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		e, err := rekor.ParseEntryResponse(raw)
		if err != nil {
			return
		}
		if rekor.VerifySET(e, &other.PublicKey) == nil || (e.Proof != nil && rekor.VerifyInclusion(e, &other.PublicKey) == nil) {
			t.Fatal("verified with a key that signed nothing")
		}
		if b, err := rekor.ParseBody(e.Body); err == nil {
			b.Logs(make([]byte, 32), []byte{1}, []byte{2})
		}
	})
}

// FuzzParseBody: hostile logged bodies never crash the parser or the
// comparison with a signature, and never match a signature they do not
// hold.
func FuzzParseBody(f *testing.F) {
	e, _ := realEntry(f)
	f.Add(e.Body)
	f.Add([]byte(`{"kind":"dsse","spec":{"payloadHash":{"algorithm":"sha256","value":"00"},"signatures":[{"signature":"AQ==","verifier":"AA=="}]}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := rekor.ParseBody(body)
		if err != nil {
			if !errors.Is(err, rekor.ErrEntryMismatch) {
				t.Fatalf("error without ErrEntryMismatch: %v", err)
			}
			return
		}
		if b.Logs(make([]byte, 32), []byte("not a signature anyone made"), []byte("not DER")) == nil {
			t.Fatal("matched a signature it cannot hold")
		}
	})
}

// FuzzParseBundle: hostile bundle annotations never crash.
func FuzzParseBundle(f *testing.F) {
	e, _ := realEntry(f)
	raw, _ := json.Marshal(rekor.BundleOf(e))
	f.Add(string(raw))
	f.Add(`{"SignedEntryTimestamp":"","Payload":{"body":"","integratedTime":0,"logIndex":0,"logID":""}}`)
	f.Add(`null`)
	f.Fuzz(func(t *testing.T, s string) {
		b, err := rekor.ParseBundle(s)
		if err != nil {
			return
		}
		if b.Payload.Body == "" || b.Payload.LogID == "" {
			t.Fatalf("accepted a bundle without an entry: %q", s)
		}
		b.Entry()
	})
}

// FuzzParseSearchQuery: what the parser accepts stays within Rekor's
// bounds.
func FuzzParseSearchQuery(f *testing.F) {
	f.Add([]byte(`{"entryUUIDs":["ab"],"logIndexes":[0,1],"entries":[{}]}`))
	f.Add([]byte(`{"logIndexes":[-1]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		q, err := rekor.ParseSearchQuery(raw)
		if err != nil {
			return
		}
		if n := len(q.EntryUUIDs) + len(q.LogIndexes) + len(q.Entries); n > rekor.MaxSearchQueries {
			t.Fatalf("accepted %d queries", n)
		}
		for _, i := range q.LogIndexes {
			if i == nil || *i < 0 {
				t.Fatal("accepted a negative or null index")
			}
		}
	})
}
