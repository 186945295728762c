package web_test

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/internal/meta/sqlite"
)

// manySigs is how many extra signatures the crowded image gets.
const manySigs = 5000

var crowdOnce sync.Once

// crowd records manySigs extra signatures of the signed image (the index's
// rows only, as an indexer would write them): the image page must still
// read one bounded page of them.
func crowd(b *testing.B, e *consoleEnv) {
	crowdOnce.Do(func() {
		s, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(e.DataDir, "hallmark.db")})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		subject := digest.Digest(e.Signed.DigestStr())
		var sigs []meta.Signature
		for i := range manySigs {
			idx := int64(1_000_000 + i)
			sigs = append(sigs, meta.Signature{Repository: e.PublicRepo, Subject: subject, Manifest: digest.FromString(fmt.Sprint("m", i)),
				Layer: digest.FromString(fmt.Sprint("l", i)), Key: fmt.Sprint("bench-", i), Kind: "cosign", Status: meta.StatusUnverified,
				StatusDetail: "synthetic", Signer: "bench@example.com", LogIndex: &idx,
				Annotations: map[string]string{"com.gitlab.ci.commit.sha": fmt.Sprint(i)}})
		}
		if _, err := s.RecordSignatures(context.Background(), sigs); err != nil {
			b.Fatal(err)
		}
	})
}

// benchPage requests path b.N times as a signed-in admin and reports the
// latency percentiles and the page size.
func benchPage(b *testing.B, e *consoleEnv, path string) {
	v := e.visitor(b)
	v.login("admin")
	if r := v.get(path); r.Status != http.StatusOK {
		b.Fatalf("%s: HTTP %d", path, r.Status)
	}
	lat := make([]time.Duration, 0, b.N)
	size := 0
	b.ResetTimer()
	for b.Loop() {
		t := time.Now()
		r := v.get(path)
		lat = append(lat, time.Since(t))
		if r.Status != http.StatusOK {
			b.Fatalf("%s: HTTP %d", path, r.Status)
		}
		size = len(r.Body)
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(float64(len(lat)-1)*p)].Microseconds()) / 1000 }
	b.ReportMetric(pct(0.5), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(size)/1024, "page-KiB")
}

// BenchmarkConsoleImagePage: the image page of a keylessly signed image
// (certificate, marks, log entry with its proof checked, SLSA provenance),
// then of the same image with 5000 more signatures in the index. Targets:
// p99 < 50 ms, pages < 100 KB.
func BenchmarkConsoleImagePage(b *testing.B) {
	e := sharedEnv(b)
	b.Run("signed", func(b *testing.B) { benchPage(b, e, imagePath(e.Contradicted)) })
	b.Run("5000-signatures", func(b *testing.B) {
		crowd(b, e)
		benchPage(b, e, imagePath(e.Signed))
	})
}

// BenchmarkConsolePages: the other pages, for their size and latency.
func BenchmarkConsolePages(b *testing.B) {
	e := sharedEnv(b)
	for name, path := range map[string]string{"overview": "/ui/", "repository": "/ui/repo/demo/app", "repositories": "/ui/repositories",
		"log-entry": "/ui/log?q=1", "audit": "/ui/audit"} {
		b.Run(name, func(b *testing.B) { benchPage(b, e, path) })
	}
}
