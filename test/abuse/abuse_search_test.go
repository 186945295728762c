package abuse

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/pkg/oci"
	"github.com/hallmark-dev/hallmark/pkg/payload"
	"github.com/hallmark-dev/hallmark/pkg/sign"
)

// searchFixture is two private projects: a/app, whose CI job is the
// attacker, and b/app with its maintainer, who investigates a commit of
// b/app that was signed there.
type searchFixture struct {
	e                  *env
	JobToken           string // a CI job token of a/app
	Maintainer, Pass   string // maintainer of b/app
	Commit             string // b/app's commit
	BImage             string // the signed image of b/app (digest)
	searchAs, adminTok string
}

const commitKey = "com.gitlab.ci.commit.sha"

func newSearchFixture(t *testing.T) *searchFixture {
	t.Helper()
	e := start(t, nil)
	ctx := context.Background()
	adm := e.admin(t)
	for _, p := range []string{"a/app", "b/app"} {
		if _, err := adm.AddProject(ctx, p, auth.VisibilityPrivate, ""); err != nil {
			t.Fatal(err)
		}
	}
	f := &searchFixture{e: e, Maintainer: "bob", Pass: "bob-password-123", Commit: strings.Repeat("b1", 20)}
	if _, err := adm.AddUser(ctx, f.Maintainer, f.Pass, false); err != nil {
		t.Fatal(err)
	}
	if err := adm.Store.SetMember(ctx, "b/app", f.Maintainer, auth.RoleMaintainer); err != nil {
		t.Fatal(err)
	}
	var err error
	if f.JobToken, _, err = adm.CreateJobToken(ctx, auth.JobTokenRequest{Project: "a/app", JobID: "66"}); err != nil {
		t.Fatal(err)
	}

	// b/app's maintainer pushes an image and signs it at the commit.
	ref, err := name.ParseReference(e.Host+"/b/app:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	bAuth := &authn.Basic{Username: f.Maintainer, Password: f.Pass}
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuth(bAuth)); err != nil {
		t.Fatal(err)
	}
	subject, _ := img.Digest()
	f.BImage = subject.String()
	body, err := payload.New(ref.Context().Name(), subject.String(), map[string]string{commitKey: f.Commit}).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sig, err := sign.KeySigner{Key: key}.Sign(ctx, body)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sign.Attach(ref.Context(), subject, sig, sign.AttachOptions{Remote: []remote.Option{remote.WithAuth(bAuth)}}); err != nil {
		t.Fatal(err)
	}
	return f
}

// search runs GET /api/v1/search?query with Basic credentials (none when
// user is empty) and returns the status and the decoded answer.
func (f *searchFixture) search(t *testing.T, query, user, pass string) (int, searchAnswer) {
	t.Helper()
	authz := ""
	if user != "" {
		authz = "Basic " + authBasic(user, pass)
	}
	req, err := http.NewRequest(http.MethodGet, f.e.URL+"/api/v1/search?"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		t.Fatal(err)
	}
	status := resp.StatusCode
	var a searchAnswer
	if status == http.StatusOK {
		if err := json.Unmarshal(body, &a); err != nil {
			t.Fatalf("search %s: the answer is not JSON: %v: %.300s", query, err, body)
		}
	} else {
		a.Error = string(body)
	}
	return status, a
}

type searchAnswer struct {
	Results []struct {
		Repository string `json:"repository"`
		Subject    string `json:"subject"`
		Status     string `json:"status"`
	} `json:"results"`
	Next  string `json:"next"`
	Error string `json:"error"`
}

// waitIndexed polls an admin search until it finds at least n results in
// repository repo among the newest 1,000.
func (f *searchFixture) waitIndexed(t *testing.T, query, repo string, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, a := f.search(t, query+"&limit=1000", "admin", f.e.AdminPassword)
		got := 0
		for _, r := range a.Results {
			if r.Repository == repo {
				got++
			}
		}
		if status == http.StatusOK && got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s the index holds %d results in %s for %s (status %d), want %d", got, repo, query, status, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pushFakeLayers pushes, as a/app's CI job, one signature manifest with n
// layers that all claim commit (one small payload blob, each layer with
// its own junk signature, so each is a signature record of its own).
func (f *searchFixture) pushFakeLayers(t *testing.T, commit string, n int) {
	t.Helper()
	tok := f.e.regToken(t, auth.JobTokenUser, f.JobToken, "repository:a/app:pull,push")
	subject := "sha256:" + strings.Repeat("ab", 32)
	body, err := payload.New(f.e.Host+"/a/app", subject, map[string]string{commitKey: commit}).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	layer := f.e.regPushBlob(t, "a/app", tok, body)
	cfg := f.e.regPushBlob(t, "a/app", tok, []byte("{}"))
	type desc struct {
		MediaType   string            `json:"mediaType"`
		Digest      string            `json:"digest"`
		Size        int               `json:"size"`
		Annotations map[string]string `json:"annotations,omitempty"`
	}
	m := struct {
		SchemaVersion int    `json:"schemaVersion"`
		MediaType     string `json:"mediaType"`
		Config        desc   `json:"config"`
		Layers        []desc `json:"layers"`
	}{SchemaVersion: 2, MediaType: "application/vnd.oci.image.manifest.v1+json",
		Config: desc{MediaType: "application/vnd.oci.image.config.v1+json", Digest: cfg.String(), Size: 2}}
	for i := range n {
		junk := base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "not a signature %d", i))
		m.Layers = append(m.Layers, desc{MediaType: "application/vnd.dev.cosign.simplesigning.v1+json", Digest: layer.String(), Size: len(body),
			Annotations: map[string]string{oci.AnnotationSignature: junk}})
	}
	raw, _ := json.Marshal(m)
	tag := strings.Replace(subject, ":", "-", 1) + ".sig"
	r := f.e.regDo(t, http.MethodPut, "/v2/a/app/manifests/"+tag, tok, raw, "Content-Type", m.MediaType)
	if r.code != http.StatusCreated {
		t.Fatalf("push of the fake signature manifest: %d %s", r.code, r.body)
	}
}

// TestSearchNotSuppressedByOtherProjectsFlood (issue 9, defect 3): search
// read the newest 1,000 matches and only then dropped what the caller may
// not pull, so a CI job of project a/app that pushed 1,000 fake signature
// layers claiming b/app's commit left b/app's maintainer with nothing.
// Access must be part of the query: the maintainer finds b/app's
// signature, and none of a/app's.
func TestSearchNotSuppressedByOtherProjectsFlood(t *testing.T) {
	f := newSearchFixture(t)
	q := "annotation=" + url.QueryEscape(commitKey+"="+f.Commit)
	f.waitIndexed(t, q, "b/app", 1)
	f.pushFakeLayers(t, f.Commit, 1000)
	f.waitIndexed(t, q, "a/app", 1000)

	status, a := f.search(t, q, f.Maintainer, f.Pass)
	if status != http.StatusOK {
		t.Fatalf("maintainer's search: %d %s", status, a.Error)
	}
	if len(a.Results) != 1 || a.Results[0].Repository != "b/app" || a.Results[0].Subject != f.BImage {
		t.Fatalf("b/app's maintainer searching its commit after a/app's flood of 1,000 fake layers found %d results (%+v); want b/app's one signature",
			len(a.Results), a.Results)
	}
}
