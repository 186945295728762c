package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/hallmark-dev/hallmark/internal/demo"
)

// WaitIndexed waits until the signature index of the server at base has
// no pending jobs (demo.WaitIndexed): every signature manifest pushed
// before the call is then indexed, and every policy change judged.
// Indexing runs in the background after a push; tests that read the
// provenance API call this first.
func WaitIndexed(tb testing.TB, base string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := demo.WaitIndexed(ctx, nil, base); err != nil {
		tb.Fatalf("testenv: %v", err)
	}
}
