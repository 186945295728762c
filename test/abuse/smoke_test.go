package abuse

import (
	"context"
	"net/http"
	"testing"
)

// TestOutsiderSeesNothingPrivate: an anonymous client is challenged for the
// catalog and for a private project's manifests, and learns nothing.
func TestOutsiderSeesNothingPrivate(t *testing.T) {
	e := start(t, nil)
	if _, err := e.admin(t).AddProject(context.Background(), "secret/app", "private", ""); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/v2/_catalog", "/v2/secret/app/manifests/latest", "/v2/secret/app/tags/list"} {
		resp, err := http.Get(e.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("anonymous GET %s: %d, want 401", path, resp.StatusCode)
		}
	}
}
