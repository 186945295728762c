package httpjson_test

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/hallmark-dev/hallmark/internal/httpjson"
)

func TestWrite(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		v      any
		want   string
		code   int
	}{
		{"value", http.StatusCreated, map[string]int{"n": 1}, "{\"n\":1}\n", http.StatusCreated},
		{"unencodable", http.StatusOK, func() {}, "{\"error\":\"encoding the response\"}\n", http.StatusInternalServerError},
	} {
		rec := httptest.NewRecorder()
		httpjson.Write(rec, tc.status, tc.v)
		if rec.Code != tc.code || rec.Body.String() != tc.want || rec.Header().Get("Content-Type") != "application/json" ||
			rec.Header().Get("Content-Length") != strconv.Itoa(len(tc.want)) {
			t.Errorf("%s: %d %q %v", tc.name, rec.Code, rec.Body.String(), rec.Header())
		}
	}
}
