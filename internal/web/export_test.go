package web_test

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/internal/meta/sqlite"
	"github.com/hallmark-dev/hallmark/internal/testenv"
	"github.com/hallmark-dev/hallmark/internal/web"
)

// exportFixture is the API over a real SQLite store holding n signatures
// in group/app whose annotations and signer start with what spreadsheets
// run as formulas, with an export cap of rows.
func exportFixture(t *testing.T, n, rows int) *httptest.Server {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(t.TempDir(), "m.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	base := time.Unix(1700000000, 0)
	var sigs []meta.Signature
	for i := range n {
		sigs = append(sigs, meta.Signature{Repository: "group/app", Subject: digest.FromString(fmt.Sprint("img", i)), Manifest: digest.FromString("m"),
			Layer: digest.FromString(fmt.Sprint("l", i)), Key: fmt.Sprint("k", i), Kind: "cosign", Status: meta.StatusInvalid,
			StatusDetail: "@SUM(A1:A9)", Signer: "=HYPERLINK(\"http://evil\")",
			Annotations: map[string]string{"com.gitlab.ci.commit.sha": fmt.Sprintf("%040x", 7), "com.gitlab.ci.user.name": "+cmd|' /C calc'!A0",
				"com.gitlab.ci.pipeline.id": "-2+3", "team": "x,\"quoted\"\nnewline"},
			Created: base.Add(time.Duration(i) * time.Second)})
	}
	if _, err := store.RecordSignatures(ctx, sigs); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	web.NewAPI(store, nil, web.WithSearcher(web.NewSearcher(store, web.SearchConfig{ExportRows: rows}))).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func exportGet(t *testing.T, srv *httptest.Server, query string) (*http.Response, []byte) {
	t.Helper()
	return testenv.Call(t, http.MethodGet, srv.URL+"/api/v1/search/export?"+query, "", nil)
}

// TestExportCSV: a header row, one row per result, RFC 4180 quoting, and
// no cell a spreadsheet would run as a formula.
func TestExportCSV(t *testing.T) {
	srv := exportFixture(t, 3, 100)
	resp, b := exportGet(t, srv, "format=csv&commit="+fmt.Sprintf("%040x", 7)+"&user=%2Bcmd%7C%27+%2FC+calc%27%21A0&annotation=team%3Dx,%22quoted%22%0Anewline")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") ||
		!strings.Contains(resp.Header.Get("Content-Disposition"), ".csv") {
		t.Fatalf("%s %v: %s", resp.Status, resp.Header, b)
	}
	rows, err := csv.NewReader(strings.NewReader(string(b))).ReadAll()
	if err != nil || len(rows) != 4 {
		t.Fatalf("%d rows, %v:\n%s", len(rows), err, b)
	}
	if rows[0][0] != "created" || rows[0][1] != "repository" {
		t.Errorf("header %q", rows[0])
	}
	for _, row := range rows[1:] {
		if len(row) != len(rows[0]) {
			t.Fatalf("row of %d cells, header of %d", len(row), len(rows[0]))
		}
		for i, cell := range row {
			if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
				t.Errorf("column %s: cell %q would run as a formula", rows[0][i], cell)
			}
		}
		if row[7] != `'=HYPERLINK("http://evil")` || row[5] != "'@SUM(A1:A9)" || row[20] != "'+cmd|' /C calc'!A0" || row[21] != meta.BasisAnnotation ||
			!strings.Contains(row[26], "annotation=team=x,\"quoted\"\nnewline (annotation)") {
			t.Errorf("row %q", row)
		}
	}
	if resp.Trailer.Get(web.TrailerTruncated) != "" {
		t.Errorf("complete export marked truncated: %v", resp.Trailer)
	}
}

// TestExportCap: an export stops at the cap with a last record saying so
// and the trailers naming the cursor that continues it; continuing
// exports the rest.
func TestExportCap(t *testing.T) {
	srv := exportFixture(t, 7, 3)
	resp, b := exportGet(t, srv, "format=ndjson&annotation=team%3Dx,%22quoted%22%0Anewline")
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if resp.StatusCode != 200 || len(lines) != 4 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("%s, %d lines:\n%s", resp.Status, len(lines), b)
	}
	var last struct{ Truncated, Next string }
	if err := json.Unmarshal([]byte(lines[3]), &last); err != nil || !strings.Contains(last.Truncated, "stopped after 3 rows") || last.Next == "" {
		t.Fatalf("last line %s", lines[3])
	}
	if resp.Trailer.Get(web.TrailerNext) != last.Next || !strings.Contains(resp.Trailer.Get(web.TrailerTruncated), "stopped after 3") {
		t.Errorf("trailers %v", resp.Trailer)
	}
	seen := map[string]bool{}
	for _, l := range lines[:3] {
		var r web.SignatureJSON
		if err := json.Unmarshal([]byte(l), &r); err != nil || r.Repository != "group/app" {
			t.Fatalf("line %s: %v", l, err)
		}
		seen[r.Subject] = true
	}
	cursor := last.Next
	for range 3 {
		resp, b = exportGet(t, srv, "format=ndjson&cursor="+cursor)
		sc := bufio.NewScanner(strings.NewReader(string(b)))
		for sc.Scan() {
			var r web.SignatureJSON
			json.Unmarshal(sc.Bytes(), &r)
			if r.Subject != "" {
				if seen[r.Subject] {
					t.Errorf("%s exported twice", r.Subject)
				}
				seen[r.Subject] = true
			}
		}
		if cursor = resp.Trailer.Get(web.TrailerNext); cursor == "" {
			break
		}
	}
	if len(seen) != 7 {
		t.Errorf("continuing the export saw %d signatures, want 7", len(seen))
	}
	// CSV: the last row says it is truncated.
	_, b = exportGet(t, srv, "format=csv&max=2")
	rows, err := csv.NewReader(strings.NewReader(string(b))).ReadAll()
	if err != nil || len(rows) != 4 || rows[3][0] != "# truncated" || !strings.Contains(rows[3][1], "stopped after 2 rows") {
		t.Errorf("csv with max=2 (%v): %q", err, rows)
	}
	for q, want := range map[string]int{"format=xml": 400, "format=csv&max=4": 400, "format=csv&max=0": 400, "format=ndjson&commit=zz": 400,
		"format=bundles": 501, "format=ndjson&limit=1001": 400} {
		if resp, b := exportGet(t, srv, q); resp.StatusCode != want {
			t.Errorf("%s: %s, want %d: %s", q, resp.Status, want, b)
		}
	}
}

// slowStore is a real store whose searches hang until their context ends:
// a database too slow for the query (the fault a flood of costly
// searches causes).
type slowStore struct {
	*sqlite.Store
	started chan struct{}
}

func (s slowStore) SearchSignatures(ctx context.Context, q meta.SignatureSearch) ([]meta.Signature, error) {
	s.started <- struct{}{}
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestSearchBoundedInTimeAndConcurrency: a search that runs out of time
// answers 503 with Retry-After (not 500), and while every search slot is
// taken another search waits at most its timeout, then answers 503 too.
func TestSearchBoundedInTimeAndConcurrency(t *testing.T) {
	store, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "m.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	slow := slowStore{store, make(chan struct{}, 1)}
	mux := http.NewServeMux()
	web.NewAPI(slow, nil, web.WithSearcher(web.NewSearcher(slow, web.SearchConfig{Timeout: 300 * time.Millisecond, Concurrent: 1}))).Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	type answer struct {
		status int
		retry  string
		body   string
	}
	get := func(out chan<- answer) {
		resp, err := http.Get(srv.URL + "/api/v1/search?commit=abcdef1")
		if err != nil {
			out <- answer{status: -1, body: err.Error()}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		out <- answer{resp.StatusCode, resp.Header.Get("Retry-After"), string(b)}
	}
	first, second := make(chan answer, 1), make(chan answer, 1)
	go get(first)
	<-slow.started // the first holds the only slot
	go get(second)
	for _, a := range []answer{<-second, <-first} {
		if a.status != http.StatusServiceUnavailable || a.retry == "" {
			t.Errorf("answer %+v; want 503 with Retry-After", a)
		}
	}
}
