package web

import (
	"errors"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-dev/hallmark/internal/meta"
)

var queryNow = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func TestParseQuery(t *testing.T) {
	sha := strings.Repeat("ab", 20)
	for _, tc := range []struct {
		in   string
		want Query
	}{
		{"", Query{Limit: DefaultLimit}},
		{"commit=" + strings.ToUpper(sha[:7]), Query{Commit: strings.ToUpper(sha[:7]), Limit: DefaultLimit}},
		{"commit=" + sha + "&limit=1000", Query{Commit: sha, Limit: 1000}},
		{"pipeline=https://gitlab.example/g/a/-/pipelines/12&job=34&runner=7&user=alice&project=g/a&ref=main",
			Query{Pipeline: "https://gitlab.example/g/a/-/pipelines/12", Job: "34", Runner: "7", User: "alice", Project: "g/a", Ref: "main", Limit: DefaultLimit}},
		{"annotation=a=b=c&annotation=tag=&status=verified,invalid&status=verified",
			Query{Annotations: []meta.KeyValue{{Key: "a", Value: "b=c"}, {Key: "tag", Value: ""}}, Status: []string{"verified", "invalid"}, Limit: DefaultLimit}},
		{"certificate=sourceRepositoryDigest=x&certificate=21=y",
			Query{Certificate: []meta.KeyValue{{Key: "1.3.6.1.4.1.57264.1.13", Value: "x"}, {Key: "1.3.6.1.4.1.57264.1.21", Value: "y"}}, Limit: DefaultLimit}},
		{"since=7d&until=2025-03-01", Query{Since: queryNow.Add(-7 * 24 * time.Hour), Until: time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), Limit: DefaultLimit}},
		{"since=2025-02-01T10:00:00Z&until=90m", Query{Since: time.Date(2025, 2, 1, 10, 0, 0, 0, time.UTC), Until: queryNow.Add(-90 * time.Minute), Limit: DefaultLimit}},
	} {
		v, err := url.ParseQuery(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseQuery(v, queryNow)
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.in, got, tc.want)
		}
		// Values reads back as the same query.
		again, err := ParseQuery(got.Values(), queryNow)
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Errorf("%s: Values() = %v reads back as %+v (%v)", tc.in, got.Values(), again, err)
		}
	}
}

func TestParseQueryRejects(t *testing.T) {
	for _, in := range []string{
		"commit=abc12", // too short a prefix
		"commit=" + strings.Repeat("a", 65),
		"commit=xyz1234",
		"limit=0", "limit=1001", "limit=x",
		"runner=r1",
		"pipeline=abc", "job=ftp://x/1", "pipeline=http://",
		"project=Bad..Name",
		"annotation=novalue", "annotation==v",
		"certificate=nope=1",
		"status=signed",
		"since=yesterday", "since=2025-02-01&until=2025-01-01", "since=-5h",
		// beyond what a time in nanoseconds holds (the store compares those)
		"until=2999-01-01", "since=1500-01-01T00:00:00Z",
		"cursor=abc", "cursor=" + encodeCursor(meta.Cursor{Created: 1, ID: 0}),
		"unknown=1",
		"commit=abcdef1&commit=abcdef2",
		"user=a%00b", "ref=" + strings.Repeat("x", maxValue+1),
		"annotation=a=1&annotation=a=2&annotation=a=3&annotation=a=4&annotation=a=5&annotation=a=6&annotation=a=7&annotation=a=8&annotation=a=9",
	} {
		v, _ := url.ParseQuery(in)
		_, err := ParseQuery(v, queryNow)
		if !errors.Is(err, ErrBadQuery) {
			t.Errorf("%.80s: accepted (%v)", in, err)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, " ") || strings.Contains(msg, "\x00") {
			t.Errorf("%.80s: error %q", in, msg)
		}
	}
	big := url.Values{"identity": {strings.Repeat("x", maxValue)}, "issuer": {strings.Repeat("x", maxValue)}}
	for i := range 8 {
		big.Add("annotation", "k"+strings.Repeat("v", maxValue-2)+string(rune('a'+i)))
	}
	if _, err := ParseQuery(big, queryNow); !errors.Is(err, ErrBadQuery) {
		t.Errorf("a %d-byte query was accepted", maxQueryBytes)
	}
}

func TestCursorRoundTrip(t *testing.T) {
	for _, c := range []meta.Cursor{{Created: 1, ID: 1}, {Created: -5, ID: 1 << 40}, {Created: time.Now().UnixNano(), ID: 7}} {
		got, err := decodeCursor(encodeCursor(c))
		if err != nil || got != c {
			t.Errorf("%+v: %+v, %v", c, got, err)
		}
	}
}

func TestQuerySearch(t *testing.T) {
	q := Query{Commit: "ABCDEF1", Pipeline: "https://gl/g/a/-/pipelines/5", Job: "https://gl/g/a/-/jobs/9", Limit: 10,
		Cursor: encodeCursor(meta.Cursor{Created: 3, ID: 4})}
	s, err := q.search(meta.Access{Public: true})
	if err != nil {
		t.Fatal(err)
	}
	want := []meta.FactFilter{{Field: meta.FieldCommit, Value: "abcdef1", Prefix: true}, {Field: meta.FieldPipeline, Value: "5"}, {Field: meta.FieldJob, Value: "9"}}
	if !reflect.DeepEqual(s.Facts, want) || s.After == nil || *s.After != (meta.Cursor{Created: 3, ID: 4}) || !s.Access.Public || s.Limit != 10 {
		t.Errorf("search %+v", s)
	}
	full, _ := Query{Commit: strings.Repeat("a", 40)}.search(meta.Access{})
	if full.Facts[0].Prefix {
		t.Error("a full commit SHA searched as a prefix")
	}
}

// FuzzParseQuery: no input makes the parser panic, and whatever it accepts
// reads back the same through Values and makes a store search with a
// valid limit.
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{"", "commit=abcdef1", "pipeline=https://g/x/-/pipelines/1&runner=2", "annotation=a=b&status=verified,invalid",
		"since=7d&until=2025-01-01", "cursor=" + encodeCursor(meta.Cursor{Created: 1, ID: 2}), "certificate=13=x&limit=5", "user=%ff%fe",
		"job=https://gitlab.example.com/g/a/-/jobs/302?x#y", "ref=refs/heads/main&project=g/a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, err := ParseQuery(v, queryNow)
		if err != nil {
			if !errors.Is(err, ErrBadQuery) {
				t.Fatalf("error %v does not wrap ErrBadQuery", err)
			}
			return
		}
		if q.Limit < 1 || q.Limit > MaxLimit {
			t.Fatalf("limit %d accepted", q.Limit)
		}
		s, err := q.search(meta.Access{All: true})
		if err != nil {
			t.Fatalf("accepted query %+v fails to become a search: %v", q, err)
		}
		for _, f := range s.Facts {
			if f.Value == "" {
				t.Fatalf("empty fact condition from %q", raw)
			}
		}
		again, err := ParseQuery(q.Values(), queryNow)
		if err != nil {
			t.Fatalf("%q: its Values %v are refused: %v", raw, q.Values(), err)
		}
		if len(again.Annotations) != len(q.Annotations) || again.Commit != q.Commit || again.Cursor != q.Cursor {
			t.Fatalf("%q reads back as %+v, was %+v", raw, again, q)
		}
	})
}
