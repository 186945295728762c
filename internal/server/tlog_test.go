package server_test

import (
	"bufio"
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
	"syscall"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/hallmark-dev/hallmark/internal/config"
	"github.com/hallmark-dev/hallmark/internal/testenv"
	"github.com/hallmark-dev/hallmark/internal/tlog"
)

var tlogHTTP = &http.Client{Timeout: 30 * time.Second}

func tlogGet(t *testing.T, url string, v any) []byte {
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
	tlogGet(t, base+"/api/v1/log", &info)
	sc, err := tlog.VerifyCheckpoint([]byte(info.SignedTreeHead), pub)
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
	raw := tlogGet(t, base+"/api/v1/log/publicKey", nil)
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

// tlogProcess is `hallmark server` as a child process.
type tlogProcess struct {
	cmd  *exec.Cmd
	url  string
	done chan struct{}
	logs bytes.Buffer
	mu   sync.Mutex
}

func startTlogProcess(t *testing.T, bin, dir string) *tlogProcess {
	t.Helper()
	cmd := exec.Command(bin, "server", "--addr", "127.0.0.1:0", "--data-dir", dir, "--log-format", "json", "--log-level", "info", "--auth", "off")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &tlogProcess{cmd: cmd, done: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.logs.Write(append(sc.Bytes(), '\n'))
			p.mu.Unlock()
			var rec struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "hallmark server listening" {
				select {
				case addr <- rec.Addr:
				default:
				}
			}
		}
	}()
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(p.kill)
	select {
	case a := <-addr:
		p.url = "http://" + a
	case <-p.done:
		t.Fatalf("hallmark server exited:\n%s", p.output())
	case <-time.After(60 * time.Second):
		t.Fatalf("hallmark server did not start:\n%s", p.output())
	}
	return p
}

func (p *tlogProcess) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

func (p *tlogProcess) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// The log survives kill -9 while submissions are in flight: every
// acknowledged entry is still there at its index, the key is the same, and
// the head after the restart is provably consistent with one signed before.
func TestTlogSurvivesKill9(t *testing.T) {
	bin := testenv.HallmarkBinary(t)
	dir := t.TempDir()
	p := startTlogProcess(t, bin, dir)
	pub, pubPEM := tlogPublicKey(t, p.url)

	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(k.Public())
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	var seq atomic.Int64
	var mu sync.Mutex
	var acked []tlogAck
	for i := 0; i < 10; i++ {
		a, ok := tlogPost(p.url, tlogEntry(k, keyPEM, seq.Add(1)))
		if !ok {
			t.Fatalf("append %d failed:\n%s", i, p.output())
		}
		acked = append(acked, a)
	}
	before, beforeRoot := tlogHead(t, p.url, pub)

	// Submissions in flight from 16 clients; kill -9 once enough are acked.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if a, ok := tlogPost(p.url, tlogEntry(k, keyPEM, seq.Add(1))); ok {
					mu.Lock()
					acked = append(acked, a)
					mu.Unlock()
				}
			}
		}()
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
	p.kill()
	close(stop)
	wg.Wait()
	t.Logf("%d entries acknowledged before kill -9 (%d submitted)", len(acked), seq.Load())

	p2 := startTlogProcess(t, bin, dir)
	pub2, pubPEM2 := tlogPublicKey(t, p2.url)
	if !bytes.Equal(pubPEM, pubPEM2) {
		t.Fatal("log key changed across the restart")
	}
	after, afterRoot := tlogHead(t, p2.url, pub2)
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

	// Consistency from the head signed before the crash to the one after.
	var cp struct {
		RootHash string   `json:"rootHash"`
		Hashes   []string `json:"hashes"`
	}
	tlogGet(t, fmt.Sprintf("%s/api/v1/log/proof?firstSize=%d&lastSize=%d", p2.url, before.TreeSize, after.TreeSize), &cp)
	var hs [][]byte
	for _, h := range cp.Hashes {
		b, _ := hex.DecodeString(h)
		hs = append(hs, b)
	}
	if cp.RootHash != after.RootHash {
		t.Fatalf("proof root %s, head root %s", cp.RootHash, after.RootHash)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, before.TreeSize, after.TreeSize, hs, beforeRoot, afterRoot); err != nil {
		t.Fatalf("consistency proof %d -> %d across kill -9: %v", before.TreeSize, after.TreeSize, err)
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
		tlogGet(t, p2.url+"/api/v1/log/entries/"+a.uuid, &m)
		e, ok := m[a.uuid]
		if !ok || e.Body != a.body || e.LogIndex != a.index {
			t.Fatalf("acknowledged entry %s (index %d) lost or changed after kill -9", a.uuid, a.index)
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

	// The log keeps appending after the restart, consistently.
	if _, ok := tlogPost(p2.url, tlogEntry(k, keyPEM, seq.Add(1))); !ok {
		t.Fatalf("append after restart failed:\n%s", p2.output())
	}
	final, finalRoot := tlogHead(t, p2.url, pub2)
	tlogGet(t, fmt.Sprintf("%s/api/v1/log/proof?firstSize=%d&lastSize=%d", p2.url, after.TreeSize, final.TreeSize), &cp)
	hs = hs[:0]
	for _, h := range cp.Hashes {
		b, _ := hex.DecodeString(h)
		hs = append(hs, b)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, after.TreeSize, final.TreeSize, hs, afterRoot, finalRoot); err != nil {
		t.Fatalf("consistency after restart: %v", err)
	}
}

// Real cosign v2 signs a blob and an attestation through Hallmark's log
// (hashedrekord and dsse entries) and verifies the bundles offline with the
// log's public key.
func TestTlogCosignSignBlob(t *testing.T) {
	cosign := testenv.Peer(t, "cosign")
	srv := testenv.StartServer(t, func(c *config.Server) { c.Auth = "off" })
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "rekor.pub"), tlogGet(t, srv.URL+"/api/v1/log/publicKey", nil), 0o600)
	blob := filepath.Join(dir, "artifact.txt")
	os.WriteFile(blob, []byte("built by CI job 42\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "predicate.json"), []byte(`{"buildType":"https://example.com/ci","builder":{"id":"hallmark-test"}}`), 0o600)
	env := append(os.Environ(), "HOME="+dir, "TUF_ROOT="+filepath.Join(dir, "tuf"), "COSIGN_PASSWORD=",
		"SIGSTORE_REKOR_PUBLIC_KEY="+filepath.Join(dir, "rekor.pub"), "COSIGN_EXPERIMENTAL=")
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
		tlogGet(t, fmt.Sprintf("%s/api/v1/log/entries?logIndex=%d", srv.URL, i), &m)
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
