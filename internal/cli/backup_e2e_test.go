package cli_test

import (
	"context"
	"crypto/ecdsa"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/hallmark-dev/hallmark/internal/config"
	"github.com/hallmark-dev/hallmark/internal/keystore"
	"github.com/hallmark-dev/hallmark/internal/testenv"
	"github.com/hallmark-dev/hallmark/pkg/rekor"
)

// TestBackupRestoreRunningServer backs up a server while images are pushed
// and signed, restores the archive into a new data dir, starts a server
// there (same address: same URLs), and checks that everything acknowledged
// before the backup is served and verifies (keyless signatures with their
// SCTs and log entries; the restored log serves each entry with an
// inclusion proof that verifies with the restored log key), and that what
// was in flight is all there or not at all.
func TestBackupRestoreRunningServer(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the hallmark binary many times; skipped with -short")
	}
	srv, stop := testenv.StartStoppableServer(t, func(c *config.Server) { c.GCGrace = 10 * time.Minute })
	e := newKeylessEnv(t, srv)
	type signed struct {
		img   name.Digest
		index int
	}
	var before []signed
	for i := range 3 {
		tag := fmt.Sprint("v", i)
		img := pushImage(t, srv.Addr, klProject, tag)
		r := e.hm.okEnv(append(e.gitlabEnv(klProject, tag), "SIGSTORE_ID_TOKEN="+e.token(klProject)), "sign", "-y", "--ci-annotations", img.String())
		m := tlogIndexRE.FindStringSubmatch(r.stderr)
		if m == nil {
			t.Fatalf("no log index in:\n%s", r.stderr)
		}
		n, _ := strconv.Atoi(m[1])
		before = append(before, signed{img, n})
	}
	// In flight during the backup: pushes of new images, and a signature.
	stopPushes := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var inflight []name.Tag
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stopPushes:
				return
			default:
			}
			img, err := random.Image(2048, 2)
			if err != nil {
				t.Error(err)
				return
			}
			ref, _ := name.NewTag(fmt.Sprintf("%s/%s:inflight-%d", srv.Addr, klProject, i))
			mu.Lock()
			inflight = append(inflight, ref)
			mu.Unlock()
			if err := remote.Write(ref, img); err != nil {
				return
			}
		}
	})
	signer := pushImage(t, srv.Addr, klProject, "signed-during")
	token := e.token(klProject)
	wg.Go(func() {
		e.hm.runEnv(append(e.gitlabEnv(klProject, "signed-during"), "SIGSTORE_ID_TOKEN="+token), "", "sign", "-y", "--ci-annotations", signer.String())
	})
	archive := filepath.Join(t.TempDir(), "hallmark-backup.tar.gz")
	r := e.hm.ok("backup", "--data-dir", srv.DataDir, "--out", archive)
	close(stopPushes)
	wg.Wait()
	t.Logf("backup: %s", r.stderr)
	if fi, err := os.Stat(archive); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("archive: %v %v", fi, err)
	}
	stop()

	dir := filepath.Join(t.TempDir(), "restored")
	e.hm.ok("restore", "--in", archive, "--data-dir", dir)
	for _, p := range []string{"hallmark.db", "keys/rekor.pem", "admin-token"} { // auth off: no admin-password
		fi, err := os.Stat(filepath.Join(dir, p))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("restored %s: %v %v", p, fi, err)
		}
	}
	if r := e.hm.run("restore", "--in", archive, "--data-dir", dir); r.code == 0 {
		t.Error("restore into a data dir with files succeeded without --force")
	}
	restored := testenv.StartServer(t, func(c *config.Server) { c.DataDir, c.Addr = dir, srv.Addr })
	if restored.URL != srv.URL {
		t.Fatalf("restored server at %s, want %s", restored.URL, srv.URL)
	}
	keys, err := keystore.Open(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	logKey, err := keystore.Load(context.Background(), keys, "rekor")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range before {
		if _, err := remote.Image(s.img); err != nil {
			t.Errorf("image %s after the restore: %v", s.img, err)
		}
		img, _ := remote.Image(s.img)
		if layers, err := img.Layers(); err == nil {
			for _, l := range layers {
				rc, err := l.Compressed()
				if err != nil {
					t.Errorf("layer of %s: %v", s.img, err)
					continue
				}
				rc.Close()
			}
		}
		e.hm.ok(append(e.verifyArgs("-a", "com.gitlab.ci.commit.sha="+klSHA), s.img.String())...)
		entry, err := rekor.ParseEntryResponse(getEntryRaw(t, restored.URL, s.index))
		if err != nil {
			t.Fatalf("log entry %d: %v", s.index, err)
		}
		if err := rekor.VerifyInclusion(entry, logKey.Public().(*ecdsa.PublicKey)); err != nil {
			t.Errorf("log entry %d: inclusion proof of the restored log: %v", s.index, err)
		}
	}
	// In flight: each image is there whole, or not at all.
	present := 0
	mu.Lock()
	defer mu.Unlock()
	for _, ref := range inflight {
		img, err := remote.Image(ref)
		if err != nil {
			continue
		}
		present++
		layers, err := img.Layers()
		if err != nil {
			t.Errorf("%s: %v", ref, err)
			continue
		}
		for _, l := range layers {
			rc, err := l.Compressed()
			if err != nil {
				t.Errorf("in-flight image %s is restored without its layer: %v", ref, err)
				continue
			}
			rc.Close()
		}
	}
	t.Logf("%d of %d in-flight images are in the backup", present, len(inflight))
}
