package abuse

import (
	"bytes"
	"context"
	"crypto/rand"
	"net/http"
	"testing"
	"time"

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/internal/config"
	"github.com/hallmark-dev/hallmark/internal/testenv"
)

// TestBlobCacheKeepsAccessControl: a blob a replica keeps in its local
// blob cache (--blob-cache-size, S3 blobs) is sent only to whom the
// registry would send it from S3: anonymous clients and another project's
// developer get no bytes of a private project's cached blob (a flood of
// their GETs never reaches the cache), and the digest under the outsider's
// own project is unknown.
func TestBlobCacheKeepsAccessControl(t *testing.T) {
	s3 := testenv.StartS3(t)
	s3.SetEnv(t)
	e := start(t, func(c *config.Server) {
		c.BlobURL = s3.BlobURL("abuse-cache")
		c.BlobCacheSize = "64MiB"
	})
	adm := e.admin(t)
	ctx := context.Background()
	for _, p := range []string{"priv/app", "other/app"} {
		if _, err := adm.AddProject(ctx, p, "private", ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := adm.AddUser(ctx, "mallory", "mallory-password-1", false); err != nil {
		t.Fatal(err)
	}
	if err := adm.Store.SetMember(ctx, "other/app", "mallory", auth.RoleDeveloper); err != nil {
		t.Fatal(err)
	}
	owner := e.regToken(t, "admin", e.AdminPassword, "repository:priv/app:push,pull")
	secret := make([]byte, 2<<20)
	rand.Read(secret)
	d := e.regPushBlob(t, "priv/app", owner, secret)
	for i := 0; e.metric(t, "hallmark_blob_cache_fills_total") < 1; i++ {
		if r := e.regDo(t, http.MethodGet, "/v2/priv/app/blobs/"+d.String(), owner, nil); r.code != http.StatusOK || !bytes.Equal(r.body, secret) {
			t.Fatalf("owner's GET: %d", r.code)
		}
		if i == 200 {
			t.Fatal("the owner's pulls never filled the cache")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if r := e.regDo(t, http.MethodGet, "/v2/priv/app/blobs/"+d.String(), owner, nil); r.code != http.StatusOK || !bytes.Equal(r.body, secret) {
		t.Fatalf("owner's cached GET: %d", r.code)
	}
	hits := e.metric(t, "hallmark_blob_cache_hits_total")
	if hits < 1 {
		t.Fatalf("hits %v after a cached GET", hits)
	}

	outsider := e.regToken(t, "mallory", "mallory-password-1", "repository:other/app:push,pull", "repository:priv/app:push,pull")
	for _, tc := range []struct{ who, token, repo string }{
		{"anonymous", "", "priv/app"},
		{"other project's developer", outsider, "priv/app"},
	} {
		for range 100 {
			r := e.regDo(t, http.MethodGet, "/v2/"+tc.repo+"/blobs/"+d.String(), tc.token, nil, "Range", "bytes=0-9")
			if r.code != http.StatusUnauthorized || bytes.Contains(r.body, secret[:10]) {
				t.Fatalf("%s, GET of the cached blob: %d; want 401 and no bytes", tc.who, r.code)
			}
		}
	}
	if r := e.regDo(t, http.MethodGet, "/v2/other/app/blobs/"+d.String(), outsider, nil); r.code != http.StatusNotFound {
		t.Fatalf("the cached digest under the outsider's own project: %d; want 404", r.code)
	}
	if got := e.metric(t, "hallmark_blob_cache_hits_total"); got != hits {
		t.Fatalf("cache hits went from %v to %v: refused requests reached the cache", hits, got)
	}
}
