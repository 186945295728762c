package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// adminClientOptions locate a Hallmark server and its admin token.
type adminClientOptions struct {
	server    string
	tokenFile string
	dataDir   string
}

func (o *adminClientOptions) bind(fs *pflag.FlagSet) {
	def := "http://127.0.0.1:5000"
	if v, ok := lookupEnv("HALLMARK_SERVER"); ok && v != "" {
		def = v
	}
	dd := ""
	if v, ok := lookupEnv("HALLMARK_DATA_DIR"); ok {
		dd = v
	}
	fs.StringVar(&o.server, "server", def, "base URL of the Hallmark server; env HALLMARK_SERVER")
	fs.StringVar(&o.tokenFile, "admin-token-file", "", "file holding the server's admin token (else env HALLMARK_ADMIN_TOKEN, else <data-dir>/admin-token)")
	fs.StringVar(&o.dataDir, "data-dir", dd, "the server's data directory, to read <data-dir>/admin-token from (when the server runs on this machine); env HALLMARK_DATA_DIR")
}

// adminToken finds the admin token: --admin-token-file, env
// HALLMARK_ADMIN_TOKEN, --data-dir, else ./hallmark-data (the server's
// default data dir) when it holds one.
func (o *adminClientOptions) adminToken() (string, error) {
	read := func(path string) (string, error) {
		raw, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("reading the admin token: %w", err)
		}
		t := strings.TrimSpace(string(raw))
		if t == "" {
			return "", fmt.Errorf("admin token file %s is empty", path)
		}
		return t, nil
	}
	if o.tokenFile != "" {
		return read(o.tokenFile)
	}
	if v, ok := lookupEnv("HALLMARK_ADMIN_TOKEN"); ok && strings.TrimSpace(v) != "" {
		return strings.TrimSpace(v), nil
	}
	if o.dataDir != "" {
		return read(filepath.Join(o.dataDir, "admin-token"))
	}
	def := filepath.Join("hallmark-data", "admin-token")
	if _, err := os.Stat(def); err == nil {
		return read(def)
	}
	return "", errors.New("no admin token: pass --admin-token-file FILE, set HALLMARK_ADMIN_TOKEN, or --data-dir DIR of the server (it writes DIR/admin-token on first start)")
}

// post sends an admin-authorised (admin token) JSON request to the
// endpoint and decodes the JSON reply into out.
func (o *adminClientOptions) post(ctx context.Context, ep adminEndpoint, body, out any) error {
	tok, err := o.adminToken()
	if err != nil {
		return err
	}
	base, err := serverURL(o.server)
	if err != nil {
		return err
	}
	reply, err := postAdmin(ctx, base, "Bearer "+tok, ep, body)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(reply, out); err != nil {
		return fmt.Errorf("the reply of %s is not the expected JSON: %w", base, err)
	}
	return nil
}

// adminEndpoint is an admin API endpoint of the server, as postAdmin's
// errors describe it.
type adminEndpoint struct {
	path     string // e.g. server.CIJobPath
	what     string // what a request asks for, e.g. "the CI job"
	notFound string // the question a 404 raises, e.g. "is it a Hallmark server of this version?"
}

// postAdmin POSTs body (nil: no body) as JSON to base+ep.path with the
// Authorization header authz and returns the body of the 200 reply. Any
// other answer is an error saying what was wrong: the credentials (401),
// the user not being an admin (403), the endpoint missing (404), else the
// server's message.
func postAdmin(ctx context.Context, base, authz string, ep adminEndpoint, body any) ([]byte, error) {
	return callAPI(ctx, http.MethodPost, base, authz, ep, body, "the user is not an admin")
}

// callAPI is postAdmin for any method (ep.path may carry a query); a 403
// is explained with forbidden.
func callAPI(ctx context.Context, method, base, authz string, ep adminEndpoint, body any, forbidden string) ([]byte, error) {
	var rd io.Reader = http.NoBody
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+ep.path, rd)
	if err != nil {
		return nil, err
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "hallmark/"+Version)
	resp, err := (&http.Client{Timeout: 2 * time.Minute}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("contacting the Hallmark server at %s: %w", base, err)
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the reply of %s: %w", base, err)
	}
	if resp.StatusCode == http.StatusOK {
		return reply, nil
	}
	var e struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(reply, &e)
	msg := e.Error
	if msg == "" {
		msg = strings.TrimSpace(string(reply))
	}
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		return nil, fmt.Errorf("admin credentials rejected by %s: %s", base, msg)
	case http.StatusForbidden:
		return nil, fmt.Errorf("%s refused: %s (%s)", base, msg, forbidden)
	case http.StatusNotFound:
		if e.Error == "" { // not the endpoint's own JSON answer: no such endpoint
			return nil, fmt.Errorf("%s has no %s endpoint (HTTP 404): %s", base, ep.path, ep.notFound)
		}
	}
	return nil, fmt.Errorf("%s refused %s (HTTP %d): %s", base, ep.what, resp.StatusCode, msg)
}
