package sqlstore

import (
	"slices"
	"testing"
)

func TestRebind(t *testing.T) {
	num, plain := &Dialect{Numbered: true}, &Dialect{}
	for _, c := range []struct{ in, want string }{
		{`SELECT 1`, `SELECT 1`},
		{`SELECT a FROM t WHERE x = ? AND y IN (?,?)`, `SELECT a FROM t WHERE x = $1 AND y IN ($2,$3)`},
		{`SELECT '?' , "a?b", ? FROM t WHERE c = 'it''s ?' AND d = ?`, `SELECT '?' , "a?b", $1 FROM t WHERE c = 'it''s ?' AND d = $2`},
		{`WHERE ? = '' OR u.name = ?`, `WHERE $1 = '' OR u.name = $2`},
	} {
		if got := num.rebind(c.in); got != c.want {
			t.Errorf("rebind(%q) = %q, want %q", c.in, got, c.want)
		}
		if got := plain.rebind(c.in); got != c.in {
			t.Errorf("?-dialect changed %q to %q", c.in, got)
		}
	}
}

func TestTextArgs(t *testing.T) {
	b := []byte{0, 0xff}
	in := []any{"ok", int64(1), "a\x00b", b, "\xffz"}
	got := textArgs(in)
	if !slices.Equal(got[:3], []any{"ok", int64(1), "a\uFFFDb"}) || got[4] != "\uFFFDz" || string(got[3].([]byte)) != string(b) {
		t.Fatalf("textArgs = %q", got)
	}
	if in[2] != "a\x00b" {
		t.Fatal("textArgs changed its input")
	}
	clean := []any{"a", 1}
	if got := textArgs(clean); &got[0] != &clean[0] {
		t.Fatal("textArgs copied clean arguments")
	}
}
