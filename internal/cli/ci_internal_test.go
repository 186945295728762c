package cli

import (
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/hallmark-dev/hallmark/internal/demo"
)

// unquotePOSIX parses the value part of an export line as a POSIX shell
// does for the two forms shellQuote produces: a bare word of safe
// characters, or single-quoted strings joined by \'.
func unquotePOSIX(s string) (string, error) {
	var b strings.Builder
	for s != "" {
		switch {
		case strings.HasPrefix(s, `\'`):
			b.WriteByte('\'')
			s = s[2:]
		case s[0] == '\'':
			end := strings.IndexByte(s[1:], '\'')
			if end < 0 {
				return "", errors.New("unterminated quote")
			}
			b.WriteString(s[1 : 1+end])
			s = s[2+end:]
		default:
			i := strings.IndexAny(s, `'\`)
			if i < 0 {
				i = len(s)
			}
			word := s[:i]
			if strings.ContainsAny(word, " \t\n\"$`;&|<>()*?[]#~") {
				return "", errors.New("unquoted shell metacharacter in " + word)
			}
			b.WriteString(word)
			s = s[i:]
		}
	}
	return b.String(), nil
}

// parseExports reads formatCIJobEnv output back: comments skipped, every
// other line "export NAME=VALUE". Newlines inside quotes join lines.
func parseExports(t *testing.T, out string) map[string]string {
	t.Helper()
	vars := map[string]string{}
	rest := out
	for rest != "" {
		line, after, _ := strings.Cut(rest, "\n")
		rest = after
		if strings.HasPrefix(line, "# ") {
			continue
		}
		// A quoted value may span lines: extend until the quotes balance.
		for openQuote(line) && rest != "" {
			next, after, _ := strings.Cut(rest, "\n")
			line += "\n" + next
			rest = after
		}
		decl, ok := strings.CutPrefix(line, "export ")
		if !ok {
			t.Fatalf("line %q is not an export", line)
		}
		k, v, ok := strings.Cut(decl, "=")
		if !ok || !demo.ValidEnvName(k) {
			t.Fatalf("bad declaration %q", line)
		}
		val, err := unquotePOSIX(v)
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		vars[k] = val
	}
	return vars
}

// openQuote reports whether a single-quoted string is still open at the
// end of s.
func openQuote(s string) bool {
	in := false
	for i := 0; i < len(s); i++ {
		switch {
		case in && s[i] == '\'':
			in = false
		case !in && s[i] == '\\' && i+1 < len(s):
			i++
		case !in && s[i] == '\'':
			in = true
		}
	}
	return in
}

func TestFormatCIJobEnv(t *testing.T) {
	in := map[string]string{"CI_PROJECT_PATH": "g/a", "GITLAB_USER_NAME": "it's \"me\" $HOME `x`\nsecond line", "CI_JOB_TOKEN": "",
		"SIGSTORE_ID_TOKEN": "a.b-c_d", "CI_COMMIT_TAG": "v1", "CI_COMMIT_REF_NAME": "v1", "ZZ_EXTRA": "1", "AA_EXTRA": "2"}
	out := formatCIJobEnv(in)
	if got := parseExports(t, out); !maps.Equal(got, in) {
		t.Errorf("round trip: got %v, want %v", got, in)
	}
	if !strings.Contains(out, "# auth is off") || strings.Contains(out, "built-in OIDC issuer is off") {
		t.Errorf("comments:\n%s", out)
	}
	if !strings.Contains(out, "@refs/tags/v1") {
		t.Errorf("tag identity:\n%s", out)
	}
	// Known names first in their order, then the others sorted.
	iTok, iAA, iZZ := strings.Index(out, "export SIGSTORE_ID_TOKEN="), strings.Index(out, "export AA_EXTRA="), strings.Index(out, "export ZZ_EXTRA=")
	if !(iTok < iAA && iAA < iZZ) {
		t.Errorf("order:\n%s", out)
	}
}

func FuzzFormatCIJobEnv(f *testing.F) {
	f.Add("GITLAB_USER_NAME", "O'Brien", "CI_PROJECT_PATH", "g/a")
	f.Add("CI_JOB_TOKEN", "", "X", "$(id)`id`\n'\\")
	f.Add("CI_COMMIT_TAG", "v1.0", "SIGSTORE_ID_TOKEN", "eyJ.eyJ.sig")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		in := map[string]string{}
		for k, v := range map[string]string{k1: v1, k2: v2} {
			if demo.ValidEnvName(k) {
				in[k] = v
			}
		}
		if got := parseExports(t, formatCIJobEnv(in)); !maps.Equal(got, in) {
			t.Fatalf("round trip: got %q, want %q", got, in)
		}
	})
}
