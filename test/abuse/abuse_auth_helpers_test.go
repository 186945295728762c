package abuse

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"testing"
	"time"
)

// authClientFrom returns an HTTP client whose connections leave from the
// loopback address ip (any of 127.0.0.0/8 on Linux), so one test can play
// several clients with distinct remote addresses against the same server.
func authClientFrom(t *testing.T, ip string) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: time.Minute}
}

// authReq sends method url with the Authorization header authz (none when
// empty) and extra headers (name, value pairs), and returns the status and
// the body (at most 64 KiB).
func authReq(t *testing.T, c *http.Client, method, u, authz string, hdr ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, b
}

// authTokenLogin logs in at the token endpoint of base (the server or a
// proxy in front of it) with Basic credentials, asking for pull and push
// on repo, and returns the status and, on 200, the access token.
func authTokenLogin(t *testing.T, c *http.Client, base, service, user, password, repo string, hdr ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
	req.SetBasicAuth(user, password)
	q := url.Values{"service": {service}, "scope": {"repository:" + repo + ":pull,push"}}
	status, body := authReq(t, c, http.MethodGet, base+"/auth/token?"+q.Encode(), req.Header.Get("Authorization"), hdr...)
	if status != http.StatusOK {
		return status, ""
	}
	var tok struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(body, &tok); err != nil || tok.Token == "" {
		t.Fatalf("token endpoint answered 200 without a token: %s", body)
	}
	return status, tok.Token
}

// authProxy is a reverse proxy on 127.0.0.1 in front of the server, as the
// README recommends for TLS: it appends the client's address to
// X-Forwarded-For, and its own connections to the server come from
// 127.0.0.1, whoever the client is.
func authProxy(t *testing.T, target string) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}}).DialContext}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}
