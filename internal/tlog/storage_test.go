package tlog_test

import (
	"crypto/sha256"
	"testing"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/hallmark-dev/hallmark/internal/tlog"
)

// PostOrder numbers nodes exactly in the order appends complete them, so
// the node table is written append-only.
func TestNodeIDPostOrder(t *testing.T) {
	rf := &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	r := rf.NewEmptyRange(0)
	var want uint64
	for i := 0; i < 1000; i++ {
		h := sha256.Sum256([]byte{byte(i), byte(i >> 8)})
		err := r.Append(h[:], func(id compact.NodeID, _ []byte) {
			if got := (tlog.NodeID{Level: id.Level, Index: id.Index}).PostOrder(); got != want {
				t.Fatalf("node (%d,%d): post-order %d, want %d", id.Level, id.Index, got, want)
			}
			want++
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
