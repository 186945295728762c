package policy_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/internal/policy"
	"github.com/hallmark-dev/hallmark/pkg/oci"
)

func TestCheckReason(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		required bool
		want     string // "" when refused
	}{
		{"plain", "CVE-2099-0001 in libfoo", true, "CVE-2099-0001 in libfoo"},
		{"trimmed", "  compromised runner 7 \t", true, "compromised runner 7"},
		{"markup is text", `<script>alert(1)</script> "quoted" \ back`, true, `<script>alert(1)</script> "quoted" \ back`},
		{"non-ASCII letters", "Sicherheitslücke – siehe Ticket", true, "Sicherheitslücke – siehe Ticket"},
		{"exactly the limit", strings.Repeat("é", policy.MaxReasonRunes), true, strings.Repeat("é", policy.MaxReasonRunes)},
		{"empty but optional", "", false, ""},
		{"empty", "", true, ""},
		{"blank", " \t ", true, ""},
		{"too long", strings.Repeat("a", policy.MaxReasonRunes+1), true, ""},
		{"newline (forged log line)", "ok\n2026-01-01 admin lifted everything", true, ""},
		{"carriage return", "ok\rfake", true, ""},
		{"inner tab", "a\tb", true, ""},
		{"escape sequence", "red \x1b[31m text", true, ""},
		{"NUL", "a\x00b", true, ""},
		{"DEL", "a\x7fb", true, ""},
		{"C1 control", "a\u0085b", true, ""},
		{"right-to-left override", "harmless\u202Egnp.exe", true, ""},
		{"zero-width space", "a\u200bb", true, ""},
		{"line separator", "a\u2028b", true, ""},
		{"invalid UTF-8", "a\xffb", true, ""},
	} {
		got, err := policy.CheckReason(tc.in, tc.required)
		refusedWant := tc.want == "" && (tc.required || tc.in != "")
		if refusedWant != (err != nil) || (err == nil && got != tc.want) {
			t.Errorf("%s: CheckReason(%q) = %q, %v", tc.name, tc.in, got, err)
		}
		if err != nil && !errors.Is(err, policy.ErrInvalid) {
			t.Errorf("%s: error %v is not ErrInvalid", tc.name, err)
		}
	}
}

func TestCheckItems(t *testing.T) {
	d := digest.FromString("a")
	ok := meta.QuarantineItem{Repository: "group/app", Digest: d}
	many := make([]meta.QuarantineItem, policy.MaxItems+1)
	for i := range many {
		many[i] = ok
	}
	for _, tc := range []struct {
		name  string
		in    []meta.QuarantineItem
		want  int // items kept; -1 refused
		match string
	}{
		{"one", []meta.QuarantineItem{ok}, 1, ""},
		{"duplicates dropped", []meta.QuarantineItem{ok, ok, {Repository: "group/other", Digest: d}, ok}, 2, ""},
		{"the limit, all the same", many[:policy.MaxItems], 1, ""},
		{"none", nil, -1, "at least one"},
		{"too many", many, -1, "at most"},
		{"bad repository", []meta.QuarantineItem{{Repository: "Group/App", Digest: d}}, -1, "item 0"},
		{"empty repository", []meta.QuarantineItem{ok, {Digest: d}}, -1, "item 1"},
		{"a tag, not a digest", []meta.QuarantineItem{{Repository: "group/app", Digest: "v1"}}, -1, "item 0"},
		{"short digest", []meta.QuarantineItem{{Repository: "group/app", Digest: "sha256:abc"}}, -1, "item 0"},
		{"unknown algorithm", []meta.QuarantineItem{{Repository: "group/app", Digest: digest.Digest("md5:" + d.Encoded()[:32])}}, -1, "item 0"},
	} {
		got, err := policy.CheckItems(tc.in)
		switch {
		case tc.want < 0 && (err == nil || !errors.Is(err, policy.ErrInvalid) || !strings.Contains(err.Error(), tc.match)):
			t.Errorf("%s: CheckItems = %v, %v; want an ErrInvalid naming %q", tc.name, got, err, tc.match)
		case tc.want >= 0 && (err != nil || len(got) != tc.want):
			t.Errorf("%s: CheckItems = %d items, %v; want %d", tc.name, len(got), err, tc.want)
		}
	}
}

// FuzzChangeRequest feeds request bodies of the quarantine API through
// the parsing and validation a request goes through: whatever is
// accepted is one line of at most MaxReasonRunes printable characters and
// valid repository names and digests.
func FuzzChangeRequest(f *testing.F) {
	d := digest.FromString("x").String()
	for _, seed := range []string{
		`{"items":[{"repository":"group/app","digest":"` + d + `"}],"reason":"CVE"}`,
		`{"items":[{"repository":"group/app","digest":"` + d + `"},{"repository":"group/app","digest":"` + d + `"}],"reason":"dup"}`,
		`{"items":[],"reason":"none"}`,
		`{"items":[{"repository":"../etc","digest":"sha256:zz"}],"reason":"x"}`,
		`{"items":[{"repository":"group/app","digest":"` + d + `"}],"reason":"a\nb"}`,
		`{"items":[{"repository":"group/app","digest":"` + d + `"}],"reason":"\u202e"}`,
		`{"items":null,"reason":""}`,
		`{"items":[{"repository":"group/app","digest":"` + d + `","extra":1}]}`,
		`[1,2]`, `{`, ``, `{"reason":"` + strings.Repeat("x", 600) + `"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req struct {
			Items  []policy.ItemJSON `json:"items"`
			Reason string            `json:"reason"`
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if dec.Decode(&req) != nil {
			return
		}
		reason, err := policy.CheckReason(req.Reason, true)
		if err == nil {
			if reason == "" || utf8.RuneCountInString(reason) > policy.MaxReasonRunes || !utf8.ValidString(reason) {
				t.Fatalf("accepted reason %q", reason)
			}
			for _, r := range reason {
				if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
					t.Fatalf("accepted reason %q with %U", reason, r)
				}
			}
		}
		items := make([]meta.QuarantineItem, len(req.Items))
		for i, it := range req.Items {
			items[i] = meta.QuarantineItem{Repository: it.Repository, Digest: digest.Digest(it.Digest)}
		}
		got, err := policy.CheckItems(items)
		if err != nil {
			return
		}
		if len(got) == 0 || len(got) > policy.MaxItems {
			t.Fatalf("accepted %d items", len(got))
		}
		for _, it := range got {
			if oci.ValidateName(it.Repository) != nil || it.Digest.Validate() != nil {
				t.Fatalf("accepted item %+v", it)
			}
		}
	})
}
