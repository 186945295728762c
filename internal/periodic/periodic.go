package periodic

import (
	"context"
	"time"
)

// Every calls fn every d (the first time d from now) until ctx is done.
// A call that runs long delays the next; ticks are not queued up.
func Every(ctx context.Context, d time.Duration, fn func(context.Context)) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fn(ctx)
	}
}
