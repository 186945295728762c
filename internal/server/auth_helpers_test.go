package server_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/internal/config"
	"github.com/hallmark-dev/hallmark/internal/server"
	"github.com/hallmark-dev/hallmark/internal/testenv"
)

// authEnv is a running server with auth on.
type authEnv struct {
	URL, Host, DataDir string
	AdminPassword      string
	Logs               *testenv.SyncBuffer // its JSON debug log
	srv                *server.Server
}

// startAuthServer runs a real server with auth on (debug logs captured,
// so tests can grep them for secrets) on a random loopback port.
func startAuthServer(t *testing.T, mod func(*config.Server)) *authEnv {
	t.Helper()
	e := testenv.StartAuthServer(t, mod)
	return &authEnv{URL: e.URL, Host: e.Host, DataDir: e.DataDir, AdminPassword: e.AdminPassword, Logs: e.Logs, srv: e.Srv}
}

// admin opens the server's database as the management CLI does.
func (e *authEnv) admin(t *testing.T) *auth.Admin {
	t.Helper()
	adm, closeFn, err := server.OpenAuthAdmin(context.Background(), e.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeFn() })
	return adm
}

type tokenReply struct {
	status  int
	header  http.Header
	Token   string `json:"token"`
	Access  string `json:"access_token"`
	Refresh string `json:"refresh_token"`
	Expires int    `json:"expires_in"`
}

// token asks the token endpoint (GET, Basic when user != "").
func (e *authEnv) token(t *testing.T, user, pw string, offline bool, scopes ...string) tokenReply {
	t.Helper()
	q := url.Values{"service": {e.Host}, "scope": scopes}
	if offline {
		q.Set("offline_token", "true")
	}
	req, _ := http.NewRequest(http.MethodGet, e.URL+"/auth/token?"+q.Encode(), nil)
	if user != "" || pw != "" {
		req.SetBasicAuth(user, pw)
	}
	return doToken(t, req)
}

// oauthToken uses the OAuth2 POST form.
func (e *authEnv) oauthToken(t *testing.T, form url.Values) tokenReply {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.URL+"/auth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return doToken(t, req)
}

func doToken(t *testing.T, req *http.Request) tokenReply {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r tokenReply
	body, _ := io.ReadAll(resp.Body)
	r.status, r.header = resp.StatusCode, resp.Header
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &r); err != nil {
			t.Fatalf("token response %s: %v", body, err)
		}
		if r.Token == "" || r.Token != r.Access {
			t.Fatalf("token response without token/access_token: %s", body)
		}
	}
	return r
}

// grantedAccess decodes the access claim of a token (no verification:
// the server verifies; the test only reads what was granted).
func grantedAccess(t *testing.T, tok string) []auth.Access {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %q", tok)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Access []auth.Access `json:"access"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c.Access
}

// call makes one registry request with a bearer token ("" for none).
func call(t *testing.T, method, u, bearer string, body []byte, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	return testenv.Call(t, method, u, bearer, body, hdr...)
}

func newHTTPClient() *http.Client { return &http.Client{Timeout: 10 * time.Second} }
