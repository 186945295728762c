package server_test

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/config"
	"github.com/hallmark-dev/hallmark/internal/testenv"
	"github.com/hallmark-dev/hallmark/pkg/rekor/rekortest"
)

// TestPostgresRestart stops PostgreSQL under a stream of manifest pushes
// and log appends to two replicas on it (blobs in S3), and starts it again: while it is
// down every push gets a prompt 503 UNAVAILABLE with Retry-After (not a
// hang, not an opaque 500), and reads too; afterwards the same server
// processes take pushes again, everything they acknowledged is served
// intact by both (in-flight pushes are all or nothing), and the log's head
// after is consistent with the one before (consistency proof), with every
// acknowledged entry in it.
func TestPostgresRestart(t *testing.T) {
	pg := testenv.StartPostgres(t)
	url := pg.NewDatabase(t)
	s3 := testenv.StartS3(t) // the replicas' shared blobs
	s3.SetEnv(t)
	var bases []string
	for range 2 {
		srv := testenv.StartServer(t, func(c *config.Server) { c.DatabaseURL, c.BlobURL = url, s3.BlobURL("pg-restart") })
		bases = append(bases, srv.URL)
	}
	base, repo := bases[0], "pg/app"
	a := newAcked()
	cfg, layer := randBytes(200), randBytes(4000)
	pushBlob(t, base, repo, cfg, a)
	pushBlob(t, base, repo, layer, a)
	logKey := rekortest.NewKey(t)
	logKeyDER, _ := x509.MarshalPKIXPublicKey(&logKey.PublicKey)
	logKeyPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: logKeyDER})
	logPub, _ := tlogPublicKey(t, bases[1])
	var logSeq atomic.Int64
	var logAcked []tlogAck

	var acked, failed atomic.Int64
	var mu sync.Mutex
	unexpected := map[string]int{} // failures other than 503 UNAVAILABLE
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 2; w++ { // log appends, one client per replica
		wg.Go(func() {
			tlogAppendUntil(stop, bases[w], logKey, logKeyPEM, &logSeq, &mu, &logAcked, 20*time.Millisecond)
		})
	}
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			base := bases[w%2]
			for i := 0; i < 100000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				body := imageManifest(cfg, [][]byte{layer}, fmt.Sprintf("pg %d %d", w, i))
				tags := []string{fmt.Sprintf("w%d-%d", w, i)}
				d := digest.FromBytes(body)
				a.mu.Lock()
				a.maybe[repo+"@"+d.String()] = maybeManifest{repo: repo, tags: tags, body: body}
				a.mu.Unlock()
				if ok, err := pushManifest(t, base, repo, body, tags, a); ok {
					acked.Add(1)
					continue
				} else if err != nil {
					failed.Add(1)
					if !isUnavailable(err.Error()) {
						mu.Lock()
						_, what, _ := strings.Cut(err.Error(), "?tag=") // without the URL's digest
						unexpected[what]++
						mu.Unlock()
					}
					time.Sleep(20 * time.Millisecond) // back off as a client would

				}
			}
		}()
	}
	waitFor(t, "pushes before the stop", func() bool { return acked.Load() >= 20 })
	logBefore, logBeforeRoot := tlogHead(t, bases[0], logPub)
	pg.Stop(t)
	failedAtStop := failed.Load()
	waitFor(t, "pushes failing while PostgreSQL is down", func() bool { return failed.Load() >= failedAtStop+20 })
	// Reads of what exists answer 503 too, with a message saying to retry.
	res, body, err := do(t, http.MethodGet, base+"/v2/"+repo+"/blobs/"+digest.FromBytes(cfg).String(), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var e struct {
		Errors []struct{ Code, Message string }
	}
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" || json.Unmarshal(body, &e) != nil ||
		len(e.Errors) != 1 || e.Errors[0].Code != "UNAVAILABLE" || e.Errors[0].Message != "the metadata database is unavailable; retry shortly" {
		t.Errorf("GET a blob while PostgreSQL is down: %s %q (Retry-After %q)", res.Status, body, res.Header.Get("Retry-After"))
	}
	for _, b := range bases {
		if res, body, err := do(t, http.MethodGet, b+"/readyz", nil, 0); err != nil || res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "database") {
			t.Errorf("readyz while PostgreSQL is down: %v %q %v", res.Status, body, err)
		}
	}

	pg.Start(t)
	ackedAtStart := acked.Load()
	mu.Lock()
	logAtStart := len(logAcked)
	mu.Unlock()
	waitFor(t, "pushes after PostgreSQL is back", func() bool { return acked.Load() >= ackedAtStart+20 })
	waitFor(t, "log appends after PostgreSQL is back", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(logAcked) >= logAtStart+20
	})
	close(stop)
	wg.Wait()
	for msg, n := range unexpected {
		t.Errorf("%d pushes failed other than with 503 UNAVAILABLE: %s", n, msg)
	}
	t.Logf("%d pushes acknowledged, %d refused while PostgreSQL was down", acked.Load(), failed.Load())
	logAfter, logAfterRoot := tlogHead(t, bases[1], logPub)
	if other, _ := tlogHead(t, bases[0], logPub); other.RootHash != logAfter.RootHash {
		t.Errorf("the replicas serve different heads: %d %s and %d %s", other.TreeSize, other.RootHash, logAfter.TreeSize, logAfter.RootHash)
	}
	checkLogKept(t, bases[1], logBefore, logBeforeRoot, logAfter, logAfterRoot, logAcked)
	t.Logf("log: %d entries acknowledged, head %d before the stop, %d after", len(logAcked), logBefore.TreeSize, logAfter.TreeSize)
	for _, b := range bases {
		mustDo(t, http.StatusOK, http.MethodGet, b+"/readyz", nil)
		verify(t, b, a)
	}
}

func isUnavailable(msg string) bool {
	return strings.Contains(msg, "503 Service Unavailable") && strings.Contains(msg, `"code":"UNAVAILABLE"`)
}
