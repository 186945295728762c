package abuse

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/hallmark-dev/hallmark/pkg/rekor/rekortest"
)

// treeSize reads the log's size from GET /api/v1/log.
func (e *env) treeSize(t *testing.T) int64 {
	t.Helper()
	resp, err := http.Get(e.URL + "/api/v1/log")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var info struct {
		TreeSize int64 `json:"treeSize"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
		t.Fatal(err)
	}
	return info.TreeSize
}

// propose posts a proposed entry to the log, unauthenticated as Rekor
// clients do, and returns the status and the answer.
func (e *env) propose(t *testing.T, entry []byte) (int, string) {
	t.Helper()
	resp, err := http.Post(e.URL+"/api/v1/log/entries", "application/json", bytes.NewReader(entry))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, string(b)
}

// bigStatement is an in-toto statement of about n bytes (an SBOM-sized
// attestation).
func bigStatement(n int) []byte {
	pad := strings.Repeat("x", n)
	return []byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"x","digest":{"sha256":"` + strings.Repeat("0", 64) +
		`"}}],"predicateType":"https://spdx.dev/Document","predicate":{"pad":"` + pad + `"}}`)
}

// TestCostlyDSSEEntries (issue 9, defect 6): an unauthenticated dsse
// entry of almost 4 MB with 16 signatures and 16 verifiers cost the log a
// signature verification, and a hash of the whole payload, per (verifier,
// signature) pair, 0.55 s of CPU, and was stored. The log now hashes the
// message once and refuses, with 413, entries over its bounds on
// signatures and verifiers and on what pure Ed25519 must hash again per
// attempt; nothing refused is stored, and a legitimate large attestation
// is still logged.
func TestCostlyDSSEEntries(t *testing.T) {
	e := start(t, nil)
	stmt := bigStatement(2_920_000)
	before := e.treeSize(t)

	t.Run("16 signatures and 16 verifiers", func(t *testing.T) {
		keys := make([]crypto.Signer, 16)
		verifiers := make([][]byte, 16)
		for i := range keys {
			k := rekortest.NewKey(t)
			keys[i], verifiers[i] = k, rekortest.PublicKeyPEM(t, k.Public())
		}
		entry := rekortest.DSSEEntry(rekortest.SignEnvelope(t, stmt, keys...), verifiers...)
		if len(entry) < 3_850_000 || len(entry) > 4<<20 {
			t.Fatalf("the attack entry is %d bytes; it must fit the request limit", len(entry))
		}
		code, body := e.propose(t, entry)
		if code != http.StatusRequestEntityTooLarge || !strings.Contains(body, "at most 8 are accepted") {
			t.Fatalf("the log answered %d %.200s; want 413 naming the bound on verifiers and signatures", code, body)
		}
	})

	t.Run("8 Ed25519 signatures and verifiers", func(t *testing.T) {
		keys := make([]crypto.Signer, 8)
		verifiers := make([][]byte, 8)
		for i := range keys {
			pub, priv, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			keys[i], verifiers[i] = priv, rekortest.PublicKeyPEM(t, pub)
		}
		code, body := e.propose(t, rekortest.DSSEEntry(rekortest.SignEnvelope(t, stmt, keys...), verifiers...))
		if code != http.StatusRequestEntityTooLarge || !strings.Contains(body, "Ed25519") {
			t.Fatalf("the log answered %d %.200s; want 413 naming the Ed25519 bound", code, body)
		}
	})

	if after := e.treeSize(t); after != before {
		t.Fatalf("the log grew from %d to %d entries: a refused entry was stored", before, after)
	}

	t.Run("one large attestation is logged", func(t *testing.T) {
		k := rekortest.NewKey(t)
		code, body := e.propose(t, rekortest.DSSEEntry(rekortest.SignEnvelope(t, stmt, k), rekortest.PublicKeyPEM(t, k.Public())))
		if code != http.StatusCreated {
			t.Fatalf("a 3.9 MB single-signature attestation: %d %.200s", code, body)
		}
		if after := e.treeSize(t); after != before+1 {
			t.Fatalf("tree size %d, want %d", after, before+1)
		}
	})
}
