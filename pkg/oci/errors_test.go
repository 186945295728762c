package oci_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/hallmark-dev/hallmark/pkg/oci"
)

func TestWriteError(t *testing.T) {
	for _, tc := range []struct {
		name, method string
		errs         []oci.ErrorInfo
		want         string // body; "" for none
	}{
		{"one error", http.MethodGet, []oci.ErrorInfo{{Code: oci.CodeNameUnknown, Message: "repository name not known to registry", Detail: map[string]string{"name": "a/b"}}},
			`{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry","detail":{"name":"a/b"}}]}`},
		{"no detail", http.MethodPut, []oci.ErrorInfo{{Code: oci.CodeDenied, Message: "no"}}, `{"errors":[{"code":"DENIED","message":"no"}]}`},
		{"two errors", http.MethodGet, []oci.ErrorInfo{{Code: oci.CodeUnauthorized, Message: "a"}, {Code: oci.CodeDenied, Message: "b"}},
			`{"errors":[{"code":"UNAUTHORIZED","message":"a"},{"code":"DENIED","message":"b"}]}`},
		{"none", http.MethodGet, nil, `{"errors":[]}`},
		{"detail that does not marshal", http.MethodGet, []oci.ErrorInfo{{Code: oci.CodeUnknown, Message: "x", Detail: func() {}}}, `{"errors":[{"code":"UNKNOWN","message":"x"}]}`},
		{"HEAD", http.MethodHead, []oci.ErrorInfo{{Code: oci.CodeManifestUnknown, Message: "manifest unknown"}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			oci.WriteError(w, httptest.NewRequest(tc.method, "/v2/a/b/manifests/x", nil), http.StatusNotFound, tc.errs...)
			if w.Code != http.StatusNotFound || w.Header().Get("Content-Type") != "application/json" {
				t.Fatalf("status %d, Content-Type %q", w.Code, w.Header().Get("Content-Type"))
			}
			if got := w.Body.String(); got != tc.want {
				t.Fatalf("body %s, want %s", got, tc.want)
			}
			if tc.want != "" {
				if n, _ := strconv.Atoi(w.Header().Get("Content-Length")); n != len(tc.want) {
					t.Errorf("Content-Length %q for a %d-byte body", w.Header().Get("Content-Length"), len(tc.want))
				}
				var back oci.ErrorResponse
				if err := json.Unmarshal(w.Body.Bytes(), &back); err != nil || len(back.Errors) != len(tc.errs) {
					t.Errorf("body does not parse back: %v %+v", err, back)
				}
			}
		})
	}
}
