package tlog_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/hallmark-dev/hallmark/internal/tlog"
	"github.com/hallmark-dev/hallmark/pkg/rekor"
	"github.com/hallmark-dev/hallmark/pkg/rekor/rekortest"
)

type apiEnv struct {
	*testLog
	srv *httptest.Server
	mux *http.ServeMux
}

func newAPI(t testing.TB, max int64) *apiEnv {
	t.Helper()
	l := newTestLog(t, tlog.Config{})
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	api, err := tlog.NewAPI(l.Log, nil, tlog.APIConfig{BaseURL: srv.URL, MaxRequestBytes: max})
	if err != nil {
		t.Fatal(err)
	}
	api.Register(mux, nil)
	return &apiEnv{testLog: l, srv: srv, mux: mux}
}

func (e *apiEnv) do(t testing.TB, method, path string, body []byte) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// Rekor's LogEntryAnon as a client decodes it.
type rekorEntry struct {
	Body           string `json:"body"`
	IntegratedTime int64  `json:"integratedTime"`
	LogID          string `json:"logID"`
	LogIndex       int64  `json:"logIndex"`
	Verification   struct {
		InclusionProof struct {
			Checkpoint string   `json:"checkpoint"`
			Hashes     []string `json:"hashes"`
			LogIndex   int64    `json:"logIndex"`
			RootHash   string   `json:"rootHash"`
			TreeSize   int64    `json:"treeSize"`
		} `json:"inclusionProof"`
		SignedEntryTimestamp string `json:"signedEntryTimestamp"`
	} `json:"verification"`
}

// verifyRekorEntry checks a wire entry the way cosign does, independently
// of the server code: UUID = SHA-256(0x00||body), the SET over the
// hand-built canonical payload, the inclusion proof, the checkpoint.
func verifyRekorEntry(t *testing.T, pub *ecdsa.PublicKey, uuid string, e rekorEntry) {
	t.Helper()
	body, err := base64.StdEncoding.DecodeString(e.Body)
	if err != nil {
		t.Fatal(err)
	}
	leaf := sha256.Sum256(append([]byte{0}, body...))
	if len(uuid) != 80 || uuid[16:] != hex.EncodeToString(leaf[:]) || uuid[:16] == "0000000000000000" {
		t.Fatalf("entry ID %s does not end with the leaf hash %x", uuid, leaf)
	}
	der, _ := x509.MarshalPKIXPublicKey(pub)
	if id := sha256.Sum256(der); e.LogID != hex.EncodeToString(id[:]) {
		t.Fatalf("logID %s is not SHA-256 of the log key", e.LogID)
	}
	payload := fmt.Sprintf(`{"body":%q,"integratedTime":%d,"logID":%q,"logIndex":%d}`, e.Body, e.IntegratedTime, e.LogID, e.LogIndex)
	set, err := base64.StdEncoding.DecodeString(e.Verification.SignedEntryTimestamp)
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256([]byte(payload))
	if !ecdsa.VerifyASN1(pub, d[:], set) {
		t.Fatal("SET does not verify")
	}
	p := e.Verification.InclusionProof
	var hashes [][]byte
	for _, h := range p.Hashes {
		b, err := hex.DecodeString(h)
		if err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, b)
	}
	root, _ := hex.DecodeString(p.RootHash)
	if p.LogIndex != e.LogIndex {
		t.Fatalf("proof index %d, entry index %d", p.LogIndex, e.LogIndex)
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(p.LogIndex), uint64(p.TreeSize), leaf[:], hashes, root); err != nil {
		t.Fatalf("inclusion proof: %v", err)
	}
	sc, err := rekor.VerifyCheckpoint([]byte(p.Checkpoint), pub)
	if err != nil {
		t.Fatal(err)
	}
	if sc.Size != uint64(p.TreeSize) || hex.EncodeToString(sc.Root[:]) != p.RootHash {
		t.Fatalf("checkpoint %d/%x vs proof %d/%s", sc.Size, sc.Root, p.TreeSize, p.RootHash)
	}
}

func decodeOne(t *testing.T, b []byte) (string, rekorEntry) {
	t.Helper()
	var m map[string]rekorEntry
	if err := json.Unmarshal(b, &m); err != nil || len(m) != 1 {
		t.Fatalf("response is not a one-entry map: %v\n%s", err, b)
	}
	for k, v := range m {
		return k, v
	}
	panic("unreachable")
}

func wantError(t *testing.T, resp *http.Response, body []byte, code int, msg string) {
	t.Helper()
	if resp.StatusCode != code {
		t.Fatalf("status %d, want %d: %s", resp.StatusCode, code, body)
	}
	var e struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Code != code {
		t.Fatalf("error body %s is not Rekor's {code,message}", body)
	}
	if !strings.Contains(e.Message, msg) {
		t.Fatalf("message %q does not say %q", e.Message, msg)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("error content type %q", ct)
	}
}

func TestAPICreateAndGet(t *testing.T) {
	env := newAPI(t, 0)
	pub := &env.key.PublicKey
	k := rekortest.NewKey(t)
	entry := rekortest.SignedEntry(t, k, []byte("api artifact"))

	resp, b := env.do(t, "POST", "/api/v1/log/entries", entry)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: %s %s", resp.Status, b)
	}
	uuid, e := decodeOne(t, b)
	if resp.Header.Get("ETag") != uuid {
		t.Fatalf("ETag %q is not the entry ID %q", resp.Header.Get("ETag"), uuid)
	}
	if loc := resp.Header.Get("Location"); loc != env.srv.URL+"/api/v1/log/entries/"+uuid {
		t.Fatalf("Location %q", loc)
	}
	verifyRekorEntry(t, pub, uuid, e)

	// Duplicate: 409, Location of the existing entry.
	resp, b = env.do(t, "POST", "/api/v1/log/entries", entry)
	wantError(t, resp, b, http.StatusConflict, "an equivalent entry already exists in the transparency log with UUID "+uuid)
	if loc := resp.Header.Get("Location"); !strings.HasSuffix(loc, "/"+uuid) {
		t.Fatalf("409 Location %q", loc)
	}

	// A second entry, then read both back in every way.
	resp, b = env.do(t, "POST", "/api/v1/log/entries", rekortest.SignedEntry(t, k, []byte("second")))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: %s %s", resp.Status, b)
	}
	uuid2, _ := decodeOne(t, b)
	for _, path := range []string{"/api/v1/log/entries/" + uuid, "/api/v1/log/entries/" + uuid[16:], "/api/v1/log/entries?logIndex=0"} {
		resp, b := env.do(t, "GET", path, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s %s", path, resp.Status, b)
		}
		id, got := decodeOne(t, b)
		if id != uuid || got.Body != e.Body || got.Verification.InclusionProof.TreeSize != 2 {
			t.Fatalf("GET %s: %s size %d", path, id, got.Verification.InclusionProof.TreeSize)
		}
		verifyRekorEntry(t, pub, id, got)
	}

	// entries/retrieve by UUID, index and proposed entry; unknown ones are left out.
	q := fmt.Sprintf(`{"entryUUIDs":[%q,%q],"logIndexes":[1,99],"entries":[%s]}`, uuid, strings.Repeat("ab", 32), entry)
	resp, b = env.do(t, "POST", "/api/v1/log/entries/retrieve", []byte(q))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("retrieve: %s %s", resp.Status, b)
	}
	var list []map[string]rekorEntry
	if err := json.Unmarshal(b, &list); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range list {
		for id, got := range m {
			verifyRekorEntry(t, pub, id, got)
			ids = append(ids, id)
		}
	}
	if want := []string{uuid, uuid, uuid2}; fmt.Sprint(ids) != fmt.Sprint(want) {
		t.Fatalf("retrieve returned %v, want %v", ids, want)
	}
}

func TestAPILogInfoKeyAndProof(t *testing.T) {
	env := newAPI(t, 0)
	pub := &env.key.PublicKey
	k := rekortest.NewKey(t)
	var roots []string
	for i := 0; i < 6; i++ {
		resp, b := env.do(t, "POST", "/api/v1/log/entries", rekortest.SignedEntry(t, k, []byte{byte(i)}))
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("create: %s", b)
		}
		_, e := decodeOne(t, b)
		roots = append(roots, e.Verification.InclusionProof.RootHash)
	}

	resp, b := env.do(t, "GET", "/api/v1/log", nil)
	var info struct {
		RootHash       string `json:"rootHash"`
		TreeSize       int64  `json:"treeSize"`
		SignedTreeHead string `json:"signedTreeHead"`
		TreeID         string `json:"treeID"`
	}
	if err := json.Unmarshal(b, &info); err != nil || resp.StatusCode != 200 {
		t.Fatalf("log info: %s %s", resp.Status, b)
	}
	if info.TreeSize != 6 || info.RootHash != roots[5] || info.TreeID != fmt.Sprint(env.TreeID()) {
		t.Fatalf("log info %+v", info)
	}
	sc, err := rekor.VerifyCheckpoint([]byte(info.SignedTreeHead), pub)
	if err != nil || sc.Size != 6 || hex.EncodeToString(sc.Root[:]) != info.RootHash {
		t.Fatalf("signed tree head: %v", err)
	}
	if !strings.HasPrefix(info.SignedTreeHead, fmt.Sprintf("rekor.test - %s\n6\n", info.TreeID)) || !strings.Contains(info.SignedTreeHead, "\n\n\u2014 rekor.test ") {
		t.Fatalf("checkpoint is not in Rekor's note format:\n%s", info.SignedTreeHead)
	}

	resp, b = env.do(t, "GET", "/api/v1/log/publicKey", nil)
	blk, _ := pem.Decode(b)
	if resp.Header.Get("Content-Type") != "application/x-pem-file" || blk == nil || blk.Type != "PUBLIC KEY" {
		t.Fatalf("public key: %q %s", resp.Header.Get("Content-Type"), b)
	}
	k2, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil || !k2.(*ecdsa.PublicKey).Equal(pub) {
		t.Fatalf("served key is not the log key: %v", err)
	}

	for _, sz := range [][2]int{{1, 6}, {2, 5}, {3, 6}, {4, 4}} {
		resp, b := env.do(t, "GET", fmt.Sprintf("/api/v1/log/proof?firstSize=%d&lastSize=%d", sz[0], sz[1]), nil)
		var cp struct {
			RootHash string   `json:"rootHash"`
			Hashes   []string `json:"hashes"`
		}
		if err := json.Unmarshal(b, &cp); err != nil || resp.StatusCode != 200 {
			t.Fatalf("proof %v: %s %s", sz, resp.Status, b)
		}
		if cp.RootHash != roots[sz[1]-1] {
			t.Fatalf("proof %v root %s, want %s", sz, cp.RootHash, roots[sz[1]-1])
		}
		var hs [][]byte
		for _, h := range cp.Hashes {
			x, _ := hex.DecodeString(h)
			hs = append(hs, x)
		}
		r1, _ := hex.DecodeString(roots[sz[0]-1])
		r2, _ := hex.DecodeString(cp.RootHash)
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, uint64(sz[0]), uint64(sz[1]), hs, r1, r2); err != nil {
			t.Fatalf("consistency %v: %v", sz, err)
		}
	}
}

func TestAPIErrors(t *testing.T) {
	env := newAPI(t, 4096)
	k := rekortest.NewKey(t)
	alg, d, sig := rekortest.SignDigest(t, k, []byte("x"))
	keyPEM := rekortest.PublicKeyPEM(t, k.Public())
	good := string(rekortest.HashedRekord(alg, d, sig, keyPEM))
	huge := strings.Replace(good, `"kind"`, `"pad":"`+strings.Repeat("A", 8192)+`","kind"`, 1)
	for _, tc := range []struct {
		name, method, path, body string
		code                     int
		msg                      string
	}{
		{"bad base64", "POST", "/api/v1/log/entries", strings.Replace(good, base64.StdEncoding.EncodeToString(sig), "@@@", 1), 400, "not valid standard base64"},
		{"wrong kind", "POST", "/api/v1/log/entries", strings.Replace(good, `"hashedrekord"`, `"alpine"`, 1), 400, `entry kind "alpine"`},
		{"wrong apiVersion", "POST", "/api/v1/log/entries", strings.Replace(good, `"0.0.1"`, `"9.9.9"`, 1), 400, `apiVersion "9.9.9"`},
		{"bad signature", "POST", "/api/v1/log/entries", string(rekortest.HashedRekord(alg, d, sig, rekortest.PublicKeyPEM(t, rekortest.NewKey(t).Public()))), 400, "does not verify"},
		{"unsupported key", "POST", "/api/v1/log/entries", string(rekortest.HashedRekord(alg, d, sig, []byte("-----BEGIN RSA PUBLIC KEY-----\nAA==\n-----END RSA PUBLIC KEY-----\n"))), 400, `PEM block type "RSA PUBLIC KEY"`},
		{"not json", "POST", "/api/v1/log/entries", "hello", 400, "not valid JSON"},
		{"huge body", "POST", "/api/v1/log/entries", huge, 413, "larger than the log accepts (4096 bytes)"},
		{"unknown uuid", "GET", "/api/v1/log/entries/" + strings.Repeat("cd", 32), "", 404, "no entry with UUID"},
		{"malformed uuid", "GET", "/api/v1/log/entries/xyz", "", 400, "must be 64 hex characters"},
		{"other tree", "GET", "/api/v1/log/entries/00000000000000ff" + strings.Repeat("cd", 32), "", 404, "is in tree 00000000000000ff"},
		{"no logIndex", "GET", "/api/v1/log/entries", "", 400, "logIndex is required"},
		{"negative logIndex", "GET", "/api/v1/log/entries?logIndex=-1", "", 400, "non-negative integer"},
		{"missing index", "GET", "/api/v1/log/entries?logIndex=5", "", 404, "no entry with log index 5"},
		{"too many queries", "POST", "/api/v1/log/entries/retrieve", `{"logIndexes":[0,1,2,3,4,5,6,7,8,9,10]}`, 422, "maximum number of queries in one search is 10"},
		{"bad query", "POST", "/api/v1/log/entries/retrieve", `{"uuids":[]}`, 422, "unknown field"},
		{"bad proposed entry in query", "POST", "/api/v1/log/entries/retrieve", `{"entries":[{"kind":"dsse"}]}`, 400, "entries[0]"},
		{"proof without lastSize", "GET", "/api/v1/log/proof?firstSize=1", "", 400, "lastSize is required"},
		{"proof beyond head", "GET", "/api/v1/log/proof?firstSize=1&lastSize=3", "", 400, "current tree size (0)"},
		{"proof first > last", "GET", "/api/v1/log/proof?firstSize=3&lastSize=2", "", 400, "less than or equal to lastSize"},
		{"key of another tree", "GET", "/api/v1/log/publicKey?treeID=42", "", 404, "not a tree of this log"},
		{"search index", "POST", "/api/v1/index/retrieve", `{"hash":"sha256:00"}`, 501, "not supported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body []byte
			if tc.body != "" {
				body = []byte(tc.body)
			}
			resp, b := env.do(t, tc.method, tc.path, body)
			wantError(t, resp, b, tc.code, tc.msg)
		})
	}
}

// FuzzAPIRequests throws arbitrary bodies and query values at the API: it
// must never panic or answer 5xx, and every error is Rekor's JSON.
func FuzzAPIRequests(f *testing.F) {
	env := newAPI(f, 1<<16)
	k := rekortest.NewKey(f)
	seed := rekortest.SignedEntry(f, k, []byte("fuzz seed"))
	f.Add(uint8(0), string(seed))
	f.Add(uint8(1), `{"entryUUIDs":["`+strings.Repeat("ab", 32)+`"],"logIndexes":[0],"entries":[`+string(seed)+`]}`)
	f.Add(uint8(2), "0")
	f.Add(uint8(3), strings.Repeat("ab", 40))
	f.Add(uint8(4), "1&lastSize=1")
	f.Add(uint8(1), `{"logIndexes":[-1]}`)
	f.Fuzz(func(t *testing.T, which uint8, in string) {
		var req *http.Request
		switch which % 5 {
		case 0:
			req = httptest.NewRequest("POST", "/api/v1/log/entries", strings.NewReader(in))
		case 1:
			req = httptest.NewRequest("POST", "/api/v1/log/entries/retrieve", strings.NewReader(in))
		case 2:
			req = httptest.NewRequest("GET", "/api/v1/log/entries?logIndex="+urlEscape(in), nil)
		case 3:
			req = httptest.NewRequest("GET", "/api/v1/log/entries/"+urlEscape(in), nil)
		case 4:
			req = httptest.NewRequest("GET", "/api/v1/log/proof?firstSize="+urlEscape(in)+"&lastSize=1", nil)
		}
		rec := httptest.NewRecorder()
		env.mux.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s: %d %s", req.Method, req.URL, rec.Code, rec.Body)
		}
		if rec.Code >= 400 && rec.Code != http.StatusNotFound && rec.Code != http.StatusMethodNotAllowed {
			var e struct {
				Code int `json:"code"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Code != rec.Code {
				t.Fatalf("error body %q", rec.Body)
			}
		}
	})
}

func urlEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
