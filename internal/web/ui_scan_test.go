package web

import (
	"errors"
	"fmt"
	"strconv"
	"testing"
)

// TestScanPage: filtered pages are full when they can be, bounded by
// pageScan reads, and say where to go on.
func TestScanPage(t *testing.T) {
	items := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("%05d", i)
		}
		return out
	}
	source := func(all []string) (func(string) ([]string, bool, error), *int) {
		reads := 0
		return func(cursor string) ([]string, bool, error) {
			reads++
			start := 0
			for start < len(all) && all[start] <= cursor {
				start++
			}
			end := min(start+scanBatch, len(all))
			return all[start:end], end < len(all), nil
		}, &reads
	}
	every := func(string) (bool, error) { return true, nil }
	tenth := func(s string) (bool, error) { n, _ := strconv.Atoi(s); return n%10 == 0, nil }
	none := func(string) (bool, error) { return false, nil }
	id := func(s string) string { return s }
	for _, tc := range []struct {
		name        string
		n           int
		after       string
		keep        func(string) (bool, error)
		rows        int
		first, next string
		scanned     int
	}{
		{"empty", 0, "", every, 0, "", "", 0},
		{"less than a page", 30, "", every, 30, "00000", "", 30},
		{"exactly a page", pageRows, "", every, pageRows, "00000", "", pageRows},
		{"a page and more", 120, "", every, pageRows, "00000", "00049", pageRows},
		{"second page", 120, "00049", every, pageRows, "00050", "00099", pageRows},
		{"last page", 120, "00099", every, 20, "00100", "", 20},
		{"filtered, full page within the scan", 1000, "", tenth, 50, "00000", "00490", 491},
		{"filtered, scan bound reached", 2000, "00490", tenth, 50, "00500", "00990", 500},
		{"nothing matches: stop at the bound, go on later", 2000, "", none, 0, "", "00499", 500},
		{"nothing matches to the end", 300, "", none, 0, "", "", 300},
	} {
		t.Run(tc.name, func(t *testing.T) {
			read, reads := source(items(tc.n))
			rows, next, scanned, err := scanPage(tc.after, read, id, tc.keep, id)
			if err != nil || len(rows) != tc.rows || next != tc.next || scanned != tc.scanned || (tc.rows > 0 && rows[0] != tc.first) {
				t.Fatalf("rows %d (first %v), next %q, scanned %d, %v; want %d (%s), %q, %d", len(rows), rows, next, scanned, err,
					tc.rows, tc.first, tc.next, tc.scanned)
			}
			if *reads > pageScan/scanBatch+1 {
				t.Errorf("%d reads", *reads)
			}
		})
	}
	boom := errors.New("boom")
	if _, _, _, err := scanPage("", func(string) ([]string, bool, error) { return nil, false, boom }, id, every, id); !errors.Is(err, boom) {
		t.Errorf("read error: %v", err)
	}
}
