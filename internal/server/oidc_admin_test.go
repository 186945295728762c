package server_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

// With auth on, the issuer's admin endpoints take an admin user's
// credentials as well as the admin token; other users are refused.
func TestOIDCMintAcceptsAdminUser(t *testing.T) {
	e := startAuthServer(t, nil)
	if _, err := e.admin(t).AddUser(context.Background(), "dev", "dev-password-123", false); err != nil {
		t.Fatal(err)
	}
	body := `{"aud":"sigstore","project":"group/app","ref":"main"}`
	for _, tc := range []struct {
		name, user, pw, bearer string
		want                   int
	}{
		{"admin user", "admin", e.AdminPassword, "", http.StatusOK},
		{"admin token", "", "", adminToken(t, e.DataDir), http.StatusOK},
		{"non-admin user", "dev", "dev-password-123", "", http.StatusUnauthorized},
		{"wrong admin password", "admin", "nope", "", http.StatusUnauthorized},
		{"wrong bearer", "", "", "hmadm_wrong-token-value", http.StatusUnauthorized},
		{"nothing", "", "", "", http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, e.URL+"/api/v1/oidc/token", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			if tc.user != "" {
				req.SetBasicAuth(tc.user, tc.pw)
			}
			if tc.bearer != "" {
				req.Header.Set("Authorization", "Bearer "+tc.bearer)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
	if strings.Contains(e.Logs.String(), e.AdminPassword) {
		t.Fatal("admin password in the server log")
	}
}
