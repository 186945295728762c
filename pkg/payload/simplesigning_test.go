package payload

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const (
	testDigest = "sha256:71b2055684c93a2b1416fc4502225cc661a1a3d30880662a481a27294788140f"
	testRepo   = "localhost:5055/demo/app"
)

// goldenCase is one simple-signing payload whose exact bytes were written by
// real cosign v2.6.5 (`cosign generate REF@DIGEST -a k=v ...`, the code path
// `cosign sign` uses), stored verbatim in testdata/simplesigning/<file>.
type goldenCase struct {
	file        string
	ref         string
	digest      string
	annotations map[string]string
}

var goldenCases = []goldenCase{
	// Byte for byte the payload observed in cosign-wire.md §2.1/§9.1
	// (`cosign sign --key ... -a env=prod -a team=core`).
	{"observed-env-team.json", testRepo, testDigest, map[string]string{"env": "prod", "team": "core"}},
	{"no-annotations.json", "index.docker.io/library/ubuntu",
		"sha256:4f5d8ba48ad0e5ad3a2d4f61f7b81a0b25ab4e1a8ab36cd7a0c1eb8c5f4a3d2e", nil},
	{"html-escape.json", testRepo, testDigest, map[string]string{"html": "<a&b>"}},
	{"key-order-unicode.json", testRepo, testDigest, map[string]string{
		"b": "1", "B": "2", "a": "3", "_x": "4", "Zed": "é☃", "ls": "x\u2028y\tz\\/"}},
	{"invalid-utf8.json", testRepo, testDigest, map[string]string{"bad": "\xff\xfe"}},
	{"empty-value.json", testRepo, testDigest, map[string]string{"empty": ""}},
	{"gitlab-tutorial.json", "registry.gitlab.example/grp/proj", testDigest, map[string]string{
		"com.gitlab.ci.user.name":           "Jane Doe",
		"com.gitlab.ci.pipeline.id":         "1234",
		"com.gitlab.ci.pipeline.url":        "https://gitlab.example/grp/proj/-/pipelines/1234",
		"com.gitlab.ci.job.id":              "5678",
		"com.gitlab.ci.job.url":             "https://gitlab.example/grp/proj/-/jobs/5678",
		"com.gitlab.ci.commit.sha":          "0123456789abcdef0123456789abcdef01234567",
		"com.gitlab.ci.commit.ref.name":     "main",
		"com.gitlab.ci.project.path":        "grp/proj",
		"org.opencontainers.image.source":   "https://gitlab.example/grp/proj",
		"org.opencontainers.image.revision": "0123456789abcdef0123456789abcdef01234567",
		"tag":                               "01234567",
	}},
}

func readGolden(t testing.TB, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "simplesigning", file))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBytesMatchesCosign(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.file, func(t *testing.T) {
			want := readGolden(t, tc.file)
			got, err := New(tc.ref, tc.digest, tc.annotations).Bytes()
			if err != nil {
				t.Fatalf("Bytes: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("bytes differ from cosign's\n got: %s\nwant: %s", got, want)
			}
		})
	}
}

func TestNewWithoutAnnotationsIsNull(t *testing.T) {
	for _, ann := range []map[string]string{nil, {}} {
		b, err := New(testRepo, testDigest, ann).Bytes()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasSuffix(b, []byte(`,"optional":null}`)) {
			t.Errorf("annotations %#v: got %s, want optional null", ann, b)
		}
	}
}

func TestNewCopiesAnnotations(t *testing.T) {
	ann := map[string]string{"k": "v"}
	p := New(testRepo, testDigest, ann)
	ann["k"] = "changed"
	if p.Optional["k"] != "v" {
		t.Errorf("New kept a reference to the caller's map")
	}
}

func TestParseGolden(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.file, func(t *testing.T) {
			p, err := Parse(readGolden(t, tc.file))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if p.Critical.Identity.DockerReference != tc.ref || p.Critical.Image.DockerManifestDigest != tc.digest {
				t.Errorf("critical = %+v", p.Critical)
			}
			want := map[string]string{}
			for k, v := range tc.annotations {
				// JSON cannot carry invalid UTF-8: cosign wrote U+FFFD.
				want[k] = string([]rune(v))
			}
			if got := p.StringAnnotations(); !reflect.DeepEqual(got, want) {
				t.Errorf("annotations = %q, want %q", got, want)
			}
			if err := p.CheckAnnotations(want); err != nil {
				t.Errorf("CheckAnnotations: %v", err)
			}
		})
	}
}

func TestParse(t *testing.T) {
	const okCritical = `"critical":{"identity":{"docker-reference":"r"},"image":{"docker-manifest-digest":"` + testDigest + `"},"type":"cosign container image signature"}`
	sha512 := "sha512:" + string(bytes.Repeat([]byte("ab"), 64))
	tests := []struct {
		name    string
		in      string
		wantErr error // nil: must parse
	}{
		{"minimal", `{` + okCritical + `}`, nil},
		{"optional null", `{` + okCritical + `,"optional":null}`, nil},
		{"whitespace and unknown fields", " {\n" + okCritical + `,"extra":[1,2],"optional":{"a":"b"}}` + "\n", nil},
		{"sha512 digest", `{"critical":{"identity":{"docker-reference":"r"},"image":{"docker-manifest-digest":"` + sha512 + `"},"type":"cosign container image signature"}}`, nil},
		{"empty docker-reference", `{"critical":{"identity":{"docker-reference":""},"image":{"docker-manifest-digest":"` + testDigest + `"},"type":"cosign container image signature"}}`, nil},
		{"keyless verify output", `{` + okCritical + `,"optional":{"1.3.6.1.4.1.57264.1.1":"https://issuer.example.com","Bundle":{"SignedEntryTimestamp":"MEQ=","Payload":{"body":"e30=","integratedTime":1795571595,"logIndex":0,"logID":"a46f"}},"Issuer":"https://issuer.example.com","Subject":"alice@example.com","build":"42"}}`, nil},

		{"empty", ``, ErrInvalidPayload},
		{"not JSON", `critical`, ErrInvalidPayload},
		{"array", `[` + `{` + okCritical + `}]`, ErrInvalidPayload},
		{"null", `null`, ErrInvalidPayload},
		{"trailing data", `{` + okCritical + `}{}`, ErrInvalidPayload},
		{"truncated", `{` + okCritical, ErrInvalidPayload},
		{"critical not object", `{"critical":"x"}`, ErrInvalidPayload},
		{"missing critical", `{"optional":{}}`, ErrInvalidPayload},
		{"missing type", `{"critical":{"identity":{"docker-reference":"r"},"image":{"docker-manifest-digest":"` + testDigest + `"}}}`, ErrWrongType},
		{"wrong type", `{"critical":{"identity":{"docker-reference":"r"},"image":{"docker-manifest-digest":"` + testDigest + `"},"type":"https://sigstore.dev/cosign/sign/v1"}}`, ErrWrongType},
		{"type not string", `{"critical":{"identity":{"docker-reference":"r"},"image":{"docker-manifest-digest":"` + testDigest + `"},"type":1}}`, ErrInvalidPayload},
		{"missing image", `{"critical":{"identity":{"docker-reference":"r"},"type":"cosign container image signature"}}`, ErrInvalidDigest},
		{"missing digest", `{"critical":{"identity":{"docker-reference":"r"},"image":{},"type":"cosign container image signature"}}`, ErrInvalidDigest},
		{"empty digest", `{"critical":{"identity":{"docker-reference":"r"},"image":{"docker-manifest-digest":""},"type":"cosign container image signature"}}`, ErrInvalidDigest},
		{"digest without algorithm", `{"critical":{"identity":{"docker-reference":"r"},"image":{"docker-manifest-digest":"71b2055684c93a2b1416fc4502225cc661a1a3d30880662a481a27294788140f"},"type":"cosign container image signature"}}`, ErrInvalidDigest},
		{"digest short", `{"critical":{"identity":{"docker-reference":"r"},"image":{"docker-manifest-digest":"sha256:71b2"},"type":"cosign container image signature"}}`, ErrInvalidDigest},
		{"digest uppercase", `{"critical":{"identity":{"docker-reference":"r"},"image":{"docker-manifest-digest":"sha256:71B2055684C93A2B1416FC4502225CC661A1A3D30880662A481A27294788140F"},"type":"cosign container image signature"}}`, ErrInvalidDigest},
		{"digest md5", `{"critical":{"identity":{"docker-reference":"r"},"image":{"docker-manifest-digest":"md5:d41d8cd98f00b204e9800998ecf8427e"},"type":"cosign container image signature"}}`, ErrInvalidDigest},
		{"missing identity", `{"critical":{"image":{"docker-manifest-digest":"` + testDigest + `"},"type":"cosign container image signature"}}`, ErrInvalidPayload},
		{"optional not object", `{` + okCritical + `,"optional":"x"}`, ErrInvalidPayload},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse([]byte(tc.in))
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if _, err := p.Bytes(); err != nil {
					t.Errorf("Bytes of a parsed payload: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) || !errors.Is(err, ErrInvalidPayload) {
				t.Fatalf("Parse error = %v, want one matching %v and ErrInvalidPayload", err, tc.wantErr)
			}
		})
	}
}

func TestParseKeepsNumbers(t *testing.T) {
	p, err := Parse([]byte(`{"critical":{"identity":{"docker-reference":"r"},"image":{"docker-manifest-digest":"` + testDigest + `"},"type":"cosign container image signature"},"optional":{"n":12345678901234567890}}`))
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := p.Optional["n"].(json.Number); !ok || n.String() != "12345678901234567890" {
		t.Errorf("optional n = %#v, want json.Number 12345678901234567890", p.Optional["n"])
	}
}

func TestBytesRejectsInvalid(t *testing.T) {
	tests := []struct {
		name string
		p    SimpleSigning
		want error
	}{
		{"bad digest", New(testRepo, "latest", nil), ErrInvalidDigest},
		{"wrong type", SimpleSigning{Critical: Critical{Image: Image{DockerManifestDigest: testDigest}, Type: "x"}}, ErrWrongType},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.p.Bytes(); !errors.Is(err, tc.want) {
				t.Errorf("Bytes error = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestCheckAnnotations(t *testing.T) {
	p, err := Parse([]byte(`{"critical":{"identity":{"docker-reference":"r"},"image":{"docker-manifest-digest":"` + testDigest + `"},"type":"cosign container image signature"},"optional":{"tag":"v1","env":"prod","empty":"","n":1,"obj":{"a":"b"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		want map[string]string
		errs []AnnotationError // expected failures, in key order
	}{
		{"nil", nil, nil},
		{"all match", map[string]string{"tag": "v1", "env": "prod"}, nil},
		{"empty value present", map[string]string{"empty": ""}, nil},
		{"different", map[string]string{"tag": "v2"}, []AnnotationError{{Key: "tag", Want: "v2", Got: "v1"}}},
		{"missing", map[string]string{"team": "core"}, []AnnotationError{{Key: "team", Want: "core", Missing: true}}},
		{"empty value missing", map[string]string{"absent": ""}, []AnnotationError{{Key: "absent", Want: "", Missing: true}}},
		{"number never matches", map[string]string{"n": "1"}, []AnnotationError{{Key: "n", Want: "1", Got: json.Number("1")}}},
		{"object never matches", map[string]string{"obj": "x"}, []AnnotationError{{Key: "obj", Want: "x", Got: map[string]any{"a": "b"}}}},
		{"several, sorted", map[string]string{"tag": "v2", "env": "prod", "a": "b"}, []AnnotationError{
			{Key: "a", Want: "b", Missing: true}, {Key: "tag", Want: "v2", Got: "v1"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := p.CheckAnnotations(tc.want)
			if len(tc.errs) == 0 {
				if err != nil {
					t.Fatalf("CheckAnnotations: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrAnnotationMismatch) {
				t.Fatalf("error %v does not match ErrAnnotationMismatch", err)
			}
			var first *AnnotationError
			if !errors.As(err, &first) || !reflect.DeepEqual(*first, tc.errs[0]) {
				t.Fatalf("errors.As = %+v, want %+v", first, tc.errs[0])
			}
			joined, ok := err.(interface{ Unwrap() []error })
			if !ok || len(joined.Unwrap()) != len(tc.errs) {
				t.Fatalf("error %q: want %d annotation errors", err, len(tc.errs))
			}
			for i, e := range joined.Unwrap() {
				if got := e.(*AnnotationError); !reflect.DeepEqual(*got, tc.errs[i]) {
					t.Errorf("error %d = %+v, want %+v", i, *got, tc.errs[i])
				}
			}
		})
	}
}

func TestAnnotationErrorText(t *testing.T) {
	tests := []struct {
		err  AnnotationError
		want string
	}{
		{AnnotationError{Key: "tag", Want: "v1", Missing: true}, `annotation "tag" is not in the signed payload (want "v1")`},
		{AnnotationError{Key: "tag", Want: "v1", Got: "v2"}, `annotation "tag" is "v2" in the signed payload, want "v1"`},
		{AnnotationError{Key: "n", Want: "1", Got: json.Number("1")}, `annotation "n" is the non-string JSON value 1 in the signed payload, want the string "1"`},
		{AnnotationError{Key: "o", Want: "x", Got: map[string]any{"a": "b"}}, `annotation "o" is the non-string JSON value {"a":"b"} in the signed payload, want the string "x"`},
	}
	for _, tc := range tests {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
}

// TestParseLenient: what cosign verify reads (any type, float numbers as
// cosign prints them back), and what it refuses, with cosign's words.
func TestParseLenient(t *testing.T) {
	p, err := ParseLenient([]byte(`{"critical":{"image":{"docker-manifest-digest":"sha256:x"},"type":"other"},"optional":{"n":1.50,"tag":"v1"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if p.Critical.Type != "other" || p.Optional["n"] != 1.5 || !reflect.DeepEqual(p.StringAnnotations(), map[string]string{"tag": "v1"}) {
		t.Errorf("parsed %+v", p)
	}
	for in, want := range map[string]string{
		"not json": "payload is not simple-signing JSON: ",
		`[]`:       "payload is not simple-signing JSON: ",
		`{}`:       "payload has no critical.image.docker-manifest-digest",
		`{"critical":{"image":{"docker-manifest-digest":""}}}`: "payload has no critical.image.docker-manifest-digest",
	} {
		_, err := ParseLenient([]byte(in))
		if !errors.Is(err, ErrInvalidPayload) || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s: %v, want %q", in, err, want)
		}
	}
}

// TestSubjectFor: the annotations of a statement are those of the subject
// that is the image.
func TestSubjectFor(t *testing.T) {
	st, err := ParseStatement([]byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"` + strings.Repeat("a", 64) +
		`"},"annotations":{"tag":"prod"}},{"digest":{"sha256":"` + strings.Repeat("b", 64) + `"},"annotations":{"tag":"dev","n":2}}],"predicateType":"p"}`))
	if err != nil {
		t.Fatal(err)
	}
	s, ok := st.SubjectFor("sha256:" + strings.Repeat("b", 64))
	if !ok || !reflect.DeepEqual(Annotations(s.Annotations), map[string]string{"tag": "dev"}) {
		t.Errorf("subject %+v %v", s, ok)
	}
	if _, ok := st.SubjectFor("sha256:" + strings.Repeat("c", 64)); ok {
		t.Error("found a subject for another digest")
	}
}
