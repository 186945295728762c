package server_test

import (
	"encoding/json"
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
)

// TestPostgresRestart stops PostgreSQL under a stream of manifest pushes to
// a server and starts it again: while it is down every push gets a prompt
// 503 UNAVAILABLE with Retry-After (not a hang, not an opaque 500), and
// reads too; afterwards the same server process takes pushes again, and
// everything it acknowledged is served intact (in-flight pushes are all or
// nothing).
func TestPostgresRestart(t *testing.T) {
	pg := testenv.StartPostgres(t)
	url := pg.NewDatabase(t)
	srv := testenv.StartServer(t, func(c *config.Server) { c.DatabaseURL = url })
	base, repo := srv.URL, "pg/app"
	a := newAcked()
	cfg, layer := randBytes(200), randBytes(4000)
	pushBlob(t, base, repo, cfg, a)
	pushBlob(t, base, repo, layer, a)

	var acked, failed atomic.Int64
	var mu sync.Mutex
	unexpected := map[string]int{} // failures other than 503 UNAVAILABLE
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
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
	if res, _, err := do(t, http.MethodGet, base+"/readyz", nil, 0); err != nil || res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("readyz while PostgreSQL is down: %v %v", res.Status, err)
	}

	pg.Start(t)
	ackedAtStart := acked.Load()
	waitFor(t, "pushes after PostgreSQL is back", func() bool { return acked.Load() >= ackedAtStart+20 })
	close(stop)
	wg.Wait()
	for msg, n := range unexpected {
		t.Errorf("%d pushes failed other than with 503 UNAVAILABLE: %s", n, msg)
	}
	t.Logf("%d pushes acknowledged, %d refused while PostgreSQL was down", acked.Load(), failed.Load())
	mustDo(t, http.StatusOK, http.MethodGet, base+"/readyz", nil)
	verify(t, base, a)
}

func isUnavailable(msg string) bool {
	return strings.Contains(msg, "503 Service Unavailable") && strings.Contains(msg, `"code":"UNAVAILABLE"`)
}
