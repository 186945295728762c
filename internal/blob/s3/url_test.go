package s3_test

import (
	"strings"
	"testing"

	blobs3 "github.com/hallmark-dev/hallmark/internal/blob/s3"
)

func TestParseURL(t *testing.T) {
	good := []struct {
		url  string
		want blobs3.Config
	}{
		{"s3://bucket", blobs3.Config{Bucket: "bucket"}},
		{"s3://my.bucket-1/", blobs3.Config{Bucket: "my.bucket-1"}},
		{"s3://bucket/registry/prod/?region=eu-west-1", blobs3.Config{Bucket: "bucket", Prefix: "registry/prod", Region: "eu-west-1"}},
		{"s3://bucket/p?endpoint=http://127.0.0.1:7070&region=us-east-1&path-style=true",
			blobs3.Config{Bucket: "bucket", Prefix: "p", Endpoint: "http://127.0.0.1:7070", Region: "us-east-1", PathStyle: true}},
		{"s3://bucket/p?endpoint=https://s3.example.com/&path-style=false", blobs3.Config{Bucket: "bucket", Prefix: "p", Endpoint: "https://s3.example.com"}},
	}
	for _, tc := range good {
		got, err := blobs3.ParseURL(tc.url)
		if err != nil {
			t.Errorf("ParseURL(%q): %v", tc.url, err)
			continue
		}
		if got.Bucket != tc.want.Bucket || got.Prefix != tc.want.Prefix || got.Endpoint != tc.want.Endpoint || got.Region != tc.want.Region || got.PathStyle != tc.want.PathStyle {
			t.Errorf("ParseURL(%q) = %+v, want %+v", tc.url, got, tc.want)
		}
	}
	bad := []struct{ url, want string }{
		{"", "scheme"},
		{"bucket/prefix", "scheme"},
		{"http://bucket/prefix", "scheme"},
		{"s3://", "bucket"},
		{"s3://ab", "bucket"},
		{"s3://Bucket", "bucket"},
		{"s3://-bucket", "bucket"},
		{"s3://bucket../x", "bucket"},
		{"s3://" + strings.Repeat("b", 64), "bucket"},
		{"s3://bucket:80/x", "bucket"},
		{"s3:bucket", "bucket"},
		{"s3://AKID:secretvalue@bucket/x", "AWS_ACCESS_KEY_ID"},
		{"s3://bucket/a/../b", "prefix"},
		{"s3://bucket/a//b", "prefix"},
		{"s3://bucket/./b", "prefix"},
		{"s3://bucket/" + strings.Repeat("p", 600), "prefix"},
		{"s3://bucket/x#frag", "fragment"},
		{"s3://bucket/x?endpoint=ftp://h", "endpoint"},
		{"s3://bucket/x?endpoint=http://", "endpoint"},
		{"s3://bucket/x?endpoint=http://u:secretvalue@h", "endpoint"},
		{"s3://bucket/x?endpoint=http://h/?token=secretvalue", "endpoint"},
		{"s3://bucket/x?endpoint=http://h?x=1", "endpoint"},
		{"s3://bucket/x?region=", "region"},
		{"s3://bucket/x?region=US_EAST", "region"},
		{"s3://bucket/x?path-style=maybe", "path-style"},
		{"s3://bucket/x?region=a&region=b", "2 times"},
		{"s3://bucket/x?secret=abc", "unknown parameter"},
		{"s3://bucket/x?%zz", "query"},
	}
	for _, tc := range bad {
		_, err := blobs3.ParseURL(tc.url)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseURL(%q) = %v, want an error about %q", tc.url, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "secretvalue") {
			t.Errorf("ParseURL(%q) echoes the secret: %v", tc.url, err)
		}
	}
}

func TestConfigStringHasNoSecrets(t *testing.T) {
	c, err := blobs3.ParseURL("s3://bucket/p?endpoint=http://127.0.0.1:7070")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.String(); got != "s3://bucket/p at http://127.0.0.1:7070" {
		t.Errorf("String() = %q", got)
	}
}

// FuzzParseURL: any string parses to a config whose bucket is valid and
// whose prefix has no '..' segment, or to an error; never a panic.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"s3://bucket/p?endpoint=http://127.0.0.1:7070&region=us-east-1&path-style=true", "s3://a:b@bucket", "s3://bucket/../x", "s3://bucket/x?%zz", "s3://b/x?region=a&region=b", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := blobs3.ParseURL(raw)
		if err != nil {
			return
		}
		if len(c.Bucket) < 3 || len(c.Bucket) > 63 || strings.ContainsAny(c.Bucket, "/:@") {
			t.Fatalf("ParseURL(%q): bucket %q", raw, c.Bucket)
		}
		for _, seg := range strings.Split(c.Prefix, "/") {
			if c.Prefix != "" && (seg == "" || seg == "." || seg == "..") {
				t.Fatalf("ParseURL(%q): prefix %q", raw, c.Prefix)
			}
		}
	})
}
