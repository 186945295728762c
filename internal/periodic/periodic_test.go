package periodic_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hallmark-dev/hallmark/internal/periodic"
)

// TestEvery: fn runs on every tick, not before the first, and Every
// returns once the context ends.
func TestEvery(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var calls atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		periodic.Every(ctx, 10*time.Millisecond, func(context.Context) {
			if calls.Add(1) == 3 {
				cancel()
			}
		})
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Every did not return after its context ended")
	}
	if n := calls.Load(); n != 3 {
		t.Errorf("%d calls, want 3 (the third ended the context)", n)
	}
	calls.Store(0)
	ended, stop := context.WithCancel(context.Background())
	stop()
	periodic.Every(ended, time.Millisecond, func(context.Context) { calls.Add(1) })
	if calls.Load() != 0 {
		t.Error("fn ran although the context had ended before the first tick")
	}
}
