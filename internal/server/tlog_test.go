package server_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/hallmark-dev/hallmark/internal/config"
	"github.com/hallmark-dev/hallmark/internal/testenv"
	"github.com/hallmark-dev/hallmark/pkg/rekor"
)

var tlogHTTP = &http.Client{Timeout: 30 * time.Second}

// getOKHeader GETs url and fails the test unless it answers 200.
func getOKHeader(t *testing.T, url string) ([]byte, http.Header) {
	t.Helper()
	resp, err := tlogHTTP.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %s", url, resp.Status, b)
	}
	return b, resp.Header
}

// getOK is getOKHeader's body, also decoded into v (JSON) unless v is nil.
func getOK(t *testing.T, url string, v any) []byte {
	t.Helper()
	b, _ := getOKHeader(t, url)
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
	}
	return b
}

type tlogInfo struct {
	RootHash       string `json:"rootHash"`
	TreeSize       uint64 `json:"treeSize"`
	SignedTreeHead string `json:"signedTreeHead"`
	TreeID         string `json:"treeID"`
}

// tlogHead fetches the log info and verifies its checkpoint with pub.
func tlogHead(t *testing.T, base string, pub *ecdsa.PublicKey) (tlogInfo, []byte) {
	t.Helper()
	var info tlogInfo
	getOK(t, base+"/api/v1/log", &info)
	sc, err := rekor.VerifyCheckpoint([]byte(info.SignedTreeHead), pub)
	if err != nil {
		t.Fatalf("signed tree head: %v\n%s", err, info.SignedTreeHead)
	}
	root, _ := hex.DecodeString(info.RootHash)
	if sc.Size != info.TreeSize || !bytes.Equal(sc.Root[:], root) {
		t.Fatalf("checkpoint %d/%x does not match log info %d/%s", sc.Size, sc.Root, info.TreeSize, info.RootHash)
	}
	return info, root
}

func tlogPublicKey(t *testing.T, base string) (*ecdsa.PublicKey, []byte) {
	t.Helper()
	raw := getOK(t, base+"/api/v1/log/publicKey", nil)
	b, _ := pem.Decode(raw)
	if b == nil {
		t.Fatalf("public key is not PEM: %s", raw)
	}
	k, err := x509.ParsePKIXPublicKey(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(*ecdsa.PublicKey), raw
}

// tlogEntry is a fresh signed hashedrekord entry.
func tlogEntry(k *ecdsa.PrivateKey, keyPEM []byte, n int64) []byte {
	d := sha256.Sum256([]byte(fmt.Sprintf("artifact %d %d", n, time.Now().UnixNano())))
	sig, _ := ecdsa.SignASN1(rand.Reader, k, d[:])
	return []byte(fmt.Sprintf(`{"apiVersion":"0.0.1","kind":"hashedrekord","spec":{"data":{"hash":{"algorithm":"sha256","value":"%x"}},"signature":{"content":"%s","publicKey":{"content":"%s"}}}}`,
		d, base64.StdEncoding.EncodeToString(sig), base64.StdEncoding.EncodeToString(keyPEM)))
}

type tlogAck struct {
	uuid  string
	index uint64
	body  string
}

// tlogPost submits an entry; ok is false when the request did not get a 201
// (for instance because the server was killed).
func tlogPost(base string, entry []byte) (tlogAck, bool) {
	resp, err := tlogHTTP.Post(base+"/api/v1/log/entries", "application/json", bytes.NewReader(entry))
	if err != nil {
		return tlogAck{}, false
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusCreated {
		return tlogAck{}, false
	}
	var m map[string]struct {
		Body     string `json:"body"`
		LogIndex uint64 `json:"logIndex"`
	}
	if json.Unmarshal(b, &m) != nil || len(m) != 1 {
		return tlogAck{}, false
	}
	for id, e := range m {
		return tlogAck{uuid: id, index: e.LogIndex, body: e.Body}, true
	}
	return tlogAck{}, false
}

// The log survives kill -9 while submissions are in flight: every
// acknowledged entry is still there at its index, the key is the same, and
// the head after the restart is provably consistent with one signed before.
func TestTlogSurvivesKill9(t *testing.T) {
	bin := testenv.HallmarkBinary(t)
	dir := t.TempDir()
	p := startServer(t, bin, dir)
	pub, pubPEM := tlogPublicKey(t, p.URL)

	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(k.Public())
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	var seq atomic.Int64
	var mu sync.Mutex
	var acked []tlogAck
	for i := 0; i < 10; i++ {
		a, ok := tlogPost(p.URL, tlogEntry(k, keyPEM, seq.Add(1)))
		if !ok {
			t.Fatalf("append %d failed:\n%s", i, p.Logs.String())
		}
		acked = append(acked, a)
	}
	before, beforeRoot := tlogHead(t, p.URL, pub)

	// Submissions in flight from 16 clients; kill -9 once enough are acked.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Go(func() { tlogAppendUntil(stop, p.URL, k, keyPEM, &seq, &mu, &acked, 0) })
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 300 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	p.Kill()
	close(stop)
	wg.Wait()
	t.Logf("%d entries acknowledged before kill -9 (%d submitted)", len(acked), seq.Load())

	p2 := startServer(t, bin, dir)
	pub2, pubPEM2 := tlogPublicKey(t, p2.URL)
	if !bytes.Equal(pubPEM, pubPEM2) {
		t.Fatal("log key changed across the restart")
	}
	after, afterRoot := tlogHead(t, p2.URL, pub2)
	if after.TreeID != before.TreeID {
		t.Fatalf("tree ID changed: %s -> %s", before.TreeID, after.TreeID)
	}
	var maxIdx uint64
	for _, a := range acked {
		maxIdx = max(maxIdx, a.index)
	}
	if after.TreeSize < uint64(len(acked)) || after.TreeSize <= maxIdx {
		t.Fatalf("tree size %d after restart, but %d entries were acknowledged (max index %d)", after.TreeSize, len(acked), maxIdx)
	}

	checkLogKept(t, p2.URL, before, beforeRoot, after, afterRoot, acked)

	// The log keeps appending after the restart, consistently.
	if _, ok := tlogPost(p2.URL, tlogEntry(k, keyPEM, seq.Add(1))); !ok {
		t.Fatalf("append after restart failed:\n%s", p2.Logs.String())
	}
	final, finalRoot := tlogHead(t, p2.URL, pub2)
	checkLogKept(t, p2.URL, after, afterRoot, final, finalRoot, nil)
}

// tlogAppendUntil appends fresh entries to the log at base until stop is
// closed, adding the acknowledged ones to acked (under mu); after a failed
// append it waits pause, as a client backing off would.
func tlogAppendUntil(stop <-chan struct{}, base string, k *ecdsa.PrivateKey, keyPEM []byte, seq *atomic.Int64, mu *sync.Mutex, acked *[]tlogAck, pause time.Duration) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		if a, ok := tlogPost(base, tlogEntry(k, keyPEM, seq.Add(1))); ok {
			mu.Lock()
			*acked = append(*acked, a)
			mu.Unlock()
		} else {
			time.Sleep(pause)
		}
	}
}

// checkLogKept checks, on the log at base, a consistency proof from the
// head before to the head after, and that every acknowledged entry is
// there, unchanged and provably included in after.
func checkLogKept(t *testing.T, base string, before tlogInfo, beforeRoot []byte, after tlogInfo, afterRoot []byte, acked []tlogAck) {
	t.Helper()
	// Consistency from the head signed before to the one after.
	var cp struct {
		RootHash string   `json:"rootHash"`
		Hashes   []string `json:"hashes"`
	}
	getOK(t, fmt.Sprintf("%s/api/v1/log/proof?firstSize=%d&lastSize=%d", base, before.TreeSize, after.TreeSize), &cp)
	var hs [][]byte
	for _, h := range cp.Hashes {
		b, _ := hex.DecodeString(h)
		hs = append(hs, b)
	}
	if cp.RootHash != after.RootHash {
		t.Fatalf("proof root %s, head root %s", cp.RootHash, after.RootHash)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, before.TreeSize, after.TreeSize, hs, beforeRoot, afterRoot); err != nil {
		t.Fatalf("consistency proof %d -> %d: %v", before.TreeSize, after.TreeSize, err)
	}

	// Every acknowledged entry is there, unchanged, provably included.
	for _, a := range acked {
		var m map[string]struct {
			Body         string `json:"body"`
			LogIndex     uint64 `json:"logIndex"`
			Verification struct {
				InclusionProof struct {
					Hashes   []string `json:"hashes"`
					TreeSize uint64   `json:"treeSize"`
					RootHash string   `json:"rootHash"`
				} `json:"inclusionProof"`
			} `json:"verification"`
		}
		getOK(t, base+"/api/v1/log/entries/"+a.uuid, &m)
		e, ok := m[a.uuid]
		if !ok || e.Body != a.body || e.LogIndex != a.index {
			t.Fatalf("acknowledged entry %s (index %d) lost or changed", a.uuid, a.index)
		}
		leaf, _ := hex.DecodeString(a.uuid[16:])
		var ph [][]byte
		for _, h := range e.Verification.InclusionProof.Hashes {
			b, _ := hex.DecodeString(h)
			ph = append(ph, b)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, e.LogIndex, e.Verification.InclusionProof.TreeSize, leaf, ph, afterRoot); err != nil {
			t.Fatalf("entry %d: %v", e.LogIndex, err)
		}
	}
}

// Real cosign v2 signs a blob and an attestation through Hallmark's log
// (hashedrekord and dsse entries) and verifies the bundles offline with the
// log's public key.
func TestTlogCosignSignBlob(t *testing.T) {
	cosign := testenv.Peer(t, "cosign")
	srv := testenv.StartServer(t, func(c *config.Server) { c.Auth = "off" })
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "rekor.pub"), getOK(t, srv.URL+"/api/v1/log/publicKey", nil), 0o600)
	blob := filepath.Join(dir, "artifact.txt")
	os.WriteFile(blob, []byte("built by CI job 42\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "predicate.json"), []byte(`{"buildType":"https://example.com/ci","builder":{"id":"hallmark-test"}}`), 0o600)
	env := testenv.ToolEnv(t, dir, false, "COSIGN_PASSWORD=", "SIGSTORE_REKOR_PUBLIC_KEY="+filepath.Join(dir, "rekor.pub"))
	run := func(args ...string) (string, error) {
		cmd := exec.Command(cosign, args...)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run("generate-key-pair"); err != nil {
		t.Fatalf("generate-key-pair: %v\n%s", err, out)
	}
	out, err := run("sign-blob", "-y", "--key", "cosign.key", "--rekor-url", srv.URL, "--bundle", "blob.bundle", blob)
	if err != nil {
		t.Fatalf("cosign sign-blob: %v\n%s", err, out)
	}
	if !strings.Contains(out, "tlog entry created with index: 0") {
		t.Errorf("sign-blob did not report log index 0:\n%s", out)
	}
	out, err = run("verify-blob", "--key", "cosign.pub", "--rekor-url", srv.URL, "--bundle", "blob.bundle", blob)
	if err != nil || !strings.Contains(out, "Verified OK") {
		t.Fatalf("cosign verify-blob: %v\n%s", err, out)
	}

	// A tampered bundle (another log index in the SET payload) is refused.
	raw, _ := os.ReadFile(filepath.Join(dir, "blob.bundle"))
	var b map[string]any
	json.Unmarshal(raw, &b)
	b["rekorBundle"].(map[string]any)["Payload"].(map[string]any)["logIndex"] = 7
	bad, _ := json.Marshal(b)
	os.WriteFile(filepath.Join(dir, "bad.bundle"), bad, 0o600)
	if out, err := run("verify-blob", "--key", "cosign.pub", "--rekor-url", srv.URL, "--bundle", "bad.bundle", blob); err == nil {
		t.Fatalf("verify-blob accepted a bundle with a forged log index:\n%s", out)
	}

	// Attestation: cosign's default dsse entry.
	out, err = run("attest-blob", "-y", "--key", "cosign.key", "--rekor-url", srv.URL, "--predicate", "predicate.json", "--type", "slsaprovenance", "--bundle", "att.bundle", blob)
	if err != nil {
		t.Fatalf("cosign attest-blob: %v\n%s", err, out)
	}
	out, err = run("verify-blob-attestation", "--key", "cosign.pub", "--rekor-url", srv.URL, "--type", "slsaprovenance", "--bundle", "att.bundle", blob)
	if err != nil || !strings.Contains(out, "Verified OK") {
		t.Fatalf("cosign verify-blob-attestation: %v\n%s", err, out)
	}
	var kinds []string
	for i := 0; i < 2; i++ {
		var m map[string]struct{ Body string }
		getOK(t, fmt.Sprintf("%s/api/v1/log/entries?logIndex=%d", srv.URL, i), &m)
		for _, e := range m {
			body, _ := base64.StdEncoding.DecodeString(e.Body)
			var k struct{ Kind string }
			json.Unmarshal(body, &k)
			kinds = append(kinds, k.Kind)
		}
	}
	if fmt.Sprint(kinds) != "[hashedrekord dsse]" {
		t.Fatalf("logged kinds %v, want [hashedrekord dsse]", kinds)
	}
}
