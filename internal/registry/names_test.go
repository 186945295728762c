package registry_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/registry"
	"github.com/hallmark-dev/hallmark/pkg/oci"
)

func TestInvalidNames(t *testing.T) {
	e := newEnv(t, registry.Config{})
	d := digest.FromString("x").String()
	names := []string{
		"UPPER",
		"app/Upper",
		"app/",
		"a//b",
		"-app",
		"app-",
		"a..b",
		"a___b",
		"a/../b",
		"a b",
		"_app",
		strings.Repeat("a", 256),
		strings.Repeat("ab/", 85) + "abc", // 258 characters
	}
	for _, name := range names {
		for _, ep := range []struct{ method, path string }{
			{http.MethodGet, "/v2/" + name + "/tags/list"},
			{http.MethodGet, "/v2/" + name + "/manifests/latest"},
			{http.MethodPut, "/v2/" + name + "/manifests/latest"},
			{http.MethodGet, "/v2/" + name + "/blobs/" + d},
			{http.MethodPost, "/v2/" + name + "/blobs/uploads/"},
			{http.MethodPatch, "/v2/" + name + "/blobs/uploads/0123456789abcdef0123456789abcdef"},
			{http.MethodGet, "/v2/" + name + "/referrers/" + d},
		} {
			r := e.do(ep.method, ep.path, []byte("{}"))
			wantError(t, ep.method+" "+ep.path, r, http.StatusBadRequest, oci.CodeNameInvalid)
		}
	}
	// Nothing was created.
	r := e.do(http.MethodGet, "/v2/_catalog", nil)
	if !bytes.Contains(r.body, []byte(`"repositories":[]`)) {
		t.Errorf("invalid names created repositories: %s", r.body)
	}
}

func TestMultiComponentNames(t *testing.T) {
	e := newEnv(t, registry.Config{})
	// Names whose components look like endpoint words must still route.
	for _, name := range []string{
		"group/sub/project",
		"a/b/c/d/e/f",
		"manifests/blobs/tags",
		"x/blobs",
		"x/blobs/uploads",
		"tags/list",
		"referrers/v2",
		"a.b/c-d/e__f/g_h",
		strings.Repeat("a", 255),
	} {
		t.Run(name[:min(len(name), 30)], func(t *testing.T) {
			body := e.image(name, oci.MediaTypeOCIManifest, nil)
			wantStatus(t, "PUT", e.pushManifest(name, "v1", oci.MediaTypeOCIManifest, body), http.StatusCreated)
			if r := e.do(http.MethodGet, "/v2/"+name+"/manifests/v1", nil); r.code != 200 || !bytes.Equal(r.body, body) {
				t.Fatalf("GET: %d", r.code)
			}
			r := e.do(http.MethodGet, "/v2/"+name+"/tags/list", nil)
			if r.code != 200 || !bytes.Contains(r.body, []byte(`"name":"`+name+`"`)) {
				t.Errorf("tags/list: %d %s", r.code, r.body)
			}
			r = e.do(http.MethodPost, "/v2/"+name+"/blobs/uploads/", nil)
			wantStatus(t, "POST upload", r, http.StatusAccepted)
			if !strings.HasPrefix(r.h.Get("Location"), "/v2/"+name+"/blobs/uploads/") {
				t.Errorf("Location %q", r.h.Get("Location"))
			}
			wantStatus(t, "GET upload", e.do(http.MethodGet, r.h.Get("Location"), nil), http.StatusNoContent)
			wantStatus(t, "DELETE upload", e.do(http.MethodDelete, r.h.Get("Location"), nil), http.StatusNoContent)
			wantStatus(t, "referrers", e.do(http.MethodGet, "/v2/"+name+"/referrers/"+digest.FromBytes(body).String(), nil), http.StatusOK)
		})
	}
}

func TestMethodNotAllowed(t *testing.T) {
	e := newEnv(t, registry.Config{})
	d := e.pushBlob("app", []byte("x")).String()
	up := e.do(http.MethodPost, "/v2/app/blobs/uploads/", nil).h.Get("Location")
	tests := []struct{ method, path string }{
		{http.MethodPost, "/v2/"},
		{http.MethodDelete, "/v2/"},
		{http.MethodPut, "/v2/_catalog"},
		{http.MethodPost, "/v2/app/tags/list"},
		{http.MethodDelete, "/v2/app/tags/list"},
		{http.MethodPost, "/v2/app/manifests/latest"},
		{http.MethodPatch, "/v2/app/manifests/latest"},
		{http.MethodPut, "/v2/app/blobs/" + d},
		{http.MethodPost, "/v2/app/blobs/" + d},
		{http.MethodPatch, "/v2/app/blobs/" + d},
		{http.MethodGet, "/v2/app/blobs/uploads/"},
		{http.MethodPut, "/v2/app/blobs/uploads/"},
		{http.MethodPost, up},
		{http.MethodPost, "/v2/app/referrers/" + d},
		{http.MethodDelete, "/v2/app/referrers/" + d},
		{"OPTIONS", "/v2/app/manifests/latest"},
	}
	for _, tc := range tests {
		wantError(t, tc.method+" "+tc.path, e.do(tc.method, tc.path, nil), http.StatusMethodNotAllowed, oci.CodeUnsupported)
	}
	// A HEAD error has no body.
	r := e.do(http.MethodHead, "/v2/app/tags/list", nil)
	if r.code != http.StatusMethodNotAllowed || len(r.body) != 0 {
		t.Errorf("HEAD tags/list: %d %d bytes", r.code, len(r.body))
	}
}

func TestUnknownEndpoints(t *testing.T) {
	e := newEnv(t, registry.Config{})
	for _, p := range []string{"/v2/app", "/v2/app/", "/v2/app/unknown/x", "/v2/app/manifests/", "/v1/", "/v2/app/blobs/uploads/x/"} {
		r := e.do(http.MethodGet, p, nil)
		if r.code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, r.code)
			continue
		}
		wantError(t, "GET "+p, r, http.StatusNotFound, oci.CodeUnsupported)
	}
}
