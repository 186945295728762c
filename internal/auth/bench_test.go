package auth_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/hallmark-dev/hallmark/internal/auth"
)

// BenchmarkGuardManifestGET measures what the /v2/ guard adds to a
// manifest GET with a valid bearer token (the handler behind it does
// nothing): the cost auth-on pays per request over auth-off.
func BenchmarkGuardManifestGET(b *testing.B) {
	ctx := context.Background()
	f := newFixture(b, auth.Config{})
	svc := f.svc
	if _, err := f.adm.AddUser(ctx, "alice", "alicepassword", true); err != nil {
		b.Fatal(err)
	}
	p, err := svc.Authenticate(ctx, "alice", "alicepassword", "192.0.2.1")
	if err != nil {
		b.Fatal(err)
	}
	resp, err := svc.IssueToken(ctx, p, scopes("repository:bench/app:pull"), false, "192.0.2.1")
	if err != nil {
		b.Fatal(err)
	}
	guard := svc.Guard(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}),
		func(string) (auth.Endpoint, error) {
			return auth.Endpoint{Kind: auth.EndpointManifests, Repository: "bench/app"}, nil
		})
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r := httptest.NewRequest(http.MethodGet, "/v2/bench/app/manifests/v1", nil)
			r.Header.Set("Authorization", "Bearer "+resp.Token)
			w := httptest.NewRecorder()
			guard.ServeHTTP(w, r)
			if w.Code != http.StatusOK {
				b.Fatalf("status %d", w.Code)
			}
		}
	})
}
