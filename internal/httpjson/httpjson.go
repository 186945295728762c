package httpjson

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// Write answers with status and v as JSON (and a final newline), with its
// Content-Length; a value that cannot be encoded answers 500 instead.
func Write(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"encoding the response"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
