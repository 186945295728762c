package testenv

import (
	"bytes"
	"io"
	"net/http"
	"testing"
)

// Call makes one HTTP request with a bearer token ("" for none) and the
// header key, value pairs in hdr, and returns the response with its body
// read in full (body nil: no request body).
func Call(tb testing.TB, method, url, bearer string, body []byte, hdr ...string) (*http.Response, []byte) {
	tb.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		tb.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}
