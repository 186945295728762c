package server_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/hallmark-dev/hallmark/internal/auth"
)

// rawGet sends one GET with the request target exactly as given (no client
// side cleaning or escaping) and returns the status code.
func rawGet(t *testing.T, host, target, bearer string) int {
	t.Helper()
	conn, err := net.DialTimeout("tcp", host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n", target, host, bearer)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestGuardPathTricks: a token that may pull the public project pub must
// not reach the private group/app through dot segments, doubled or
// encoded slashes, or a repository name that ends like an endpoint; the
// guard and the registry must agree on the repository a path names.
func TestGuardPathTricks(t *testing.T) {
	ctx := context.Background()
	e := startAuthServer(t, nil)
	adm := e.admin(t)
	for _, p := range [][2]string{{"group/app", auth.VisibilityPrivate}, {"pub", auth.VisibilityPublic}} {
		if _, err := adm.AddProject(ctx, p[0], p[1], ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pushRandom(t, e.Host+"/group/app:v1", "admin", e.AdminPassword); err != nil {
		t.Fatal(err)
	}
	if _, err := pushRandom(t, e.Host+"/pub:v1", "admin", e.AdminPassword); err != nil {
		t.Fatal(err)
	}
	tr := e.token(t, "", "", false, "repository:pub:pull", "repository:pub/manifests/x:pull")
	if g := grantedAccess(t, tr.Token); len(g) == 0 {
		t.Fatal("anonymous pull on pub not granted")
	}
	if got := rawGet(t, e.Host, "/v2/pub/manifests/v1", tr.Token); got != http.StatusOK {
		t.Fatalf("control: pub manifest with the pub token: %d", got)
	}
	for _, target := range []string{
		"/v2/group/app/manifests/v1",
		"/v2/pub/../group/app/manifests/v1",
		"/v2/pub/%2e%2e/group/app/manifests/v1",
		"/v2/pub%2F..%2Fgroup/app/manifests/v1",
		"/v2/pub/..%2Fgroup/app/manifests/v1",
		"//v2/group/app/manifests/v1",
		"/v2//group/app/manifests/v1",
		"/v2/group/app/manifests/v1/",
		"/v2/group/app%2Fmanifests%2Fv1",
		"/v2/group%2Fapp/manifests/v1",
		"/v2/group/app/tags/list",
		"/v2/group/app/manifests/v1?x=/v2/pub/manifests/v1",
		"/v2/pub/manifests/x/../../../group/app/manifests/v1",
		"/v2/group/app/blobs/uploads/../../manifests/v1",
	} {
		// A redirect to the cleaned path is fine: the client must come
		// back with a token for the repository that path names.
		if got := rawGet(t, e.Host, target, tr.Token); got >= 200 && got < 300 {
			t.Errorf("GET %s with a token for pub only: %d (private content served)", target, got)
		}
	}
}
