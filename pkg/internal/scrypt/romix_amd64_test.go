//go:build !purego

package scrypt

import "testing"

// The two loops of ROMix on their own, on memory that is already mapped:
// the first is compute-bound, the second adds a memory round trip per
// block. go test -bench 'Fill|Mix' ./pkg/internal/scrypt
func BenchmarkFill(b *testing.B) {
	n := 1 << 16
	v, release, err := allocate(n * blockWords * 4)
	if err != nil {
		b.Fatal(err)
	}
	defer release()
	var x [blockWords]uint32
	for i := range blockWords {
		v[i] = uint32(i)*2654435761 + 12345
	}
	for b.Loop() {
		fill(v, n, &x)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n*16), "ns/salsa20")
}

func BenchmarkMix(b *testing.B) {
	n := 1 << 16
	v, release, err := allocate(n * blockWords * 4)
	if err != nil {
		b.Fatal(err)
	}
	defer release()
	var x, y [blockWords]uint32
	for i := range blockWords {
		v[i] = uint32(i)*2654435761 + 12345
	}
	fill(v, n, &x)
	seed := x
	i := uint32(0)
	for b.Loop() {
		x = seed
		x[0] ^= i
		i++
		mix(&x, &y, v, n)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/blockmix")
}
