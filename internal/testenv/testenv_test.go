package testenv_test

import (
	"net/http"
	"testing"

	"github.com/hallmark-dev/hallmark/internal/testenv"
)

func TestStartServer(t *testing.T) {
	s := testenv.StartServer(t, nil)
	resp, err := http.Get(s.URL + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v2/: %s", resp.Status)
	}
}
