package payload

import (
	"strings"
	"testing"
	"time"
)

func TestPredicateType(t *testing.T) {
	for in, want := range map[string]string{"custom": PredicateCustom, "slsaprovenance": PredicateSLSA02, "slsaprovenance1": PredicateSLSA1,
		"spdxjson": PredicateSPDX, "https://example.com/p/v1": "https://example.com/p/v1", "urn:example:x": "urn:example:x"} {
		if got, err := PredicateType(in); err != nil || got != want {
			t.Errorf("%s: %q %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "slsa", "not a uri", "/relative"} {
		if _, err := PredicateType(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestPredicate(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	b, err := Predicate(PredicateCustom, []byte("hello\n"), now)
	if err != nil || string(b) != `{"Data":"hello\n","Timestamp":"2026-01-02T03:04:05Z"}` {
		t.Errorf("custom: %s %v", b, err)
	}
	b, err = Predicate(PredicateSLSA1, []byte("{\n  \"a\": 1\n}\n"), now)
	if err != nil || string(b) != `{"a":1}` {
		t.Errorf("slsa: %s %v", b, err)
	}
	for _, bad := range []string{"[1]", "not json", ""} {
		if _, err := Predicate(PredicateSLSA1, []byte(bad), now); err == nil || !strings.Contains(err.Error(), "predicate is not") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
