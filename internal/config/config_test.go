package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// parse binds a fresh Server to a flag set, parses args, then applies env
// and file as `hallmark server` does.
func parse(t *testing.T, args []string, env map[string]string, file string) (Server, error) {
	t.Helper()
	c := Defaults()
	fs := pflag.NewFlagSet("server", pflag.ContinueOnError)
	c.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	path := ""
	if file != "" {
		path = filepath.Join(t.TempDir(), "hallmark.yaml")
		if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	err := Apply(fs, path, lookup)
	return c, err
}

func TestPrecedenceFlagEnvFileDefault(t *testing.T) {
	file := "addr: 127.0.0.1:7001\ndata-dir: /from/file\nlog-level: warn\nupload-ttl: 2h\n"
	env := map[string]string{"HALLMARK_ADDR": "127.0.0.1:7002", "HALLMARK_DATA_DIR": "/from/env"}
	c, err := parse(t, []string{"--addr", "127.0.0.1:7003"}, env, file)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:7003" {
		t.Errorf("addr = %q: the flag must win over env and file", c.Addr)
	}
	if c.DataDir != "/from/env" {
		t.Errorf("data-dir = %q: env must win over the file", c.DataDir)
	}
	if c.LogLevel != "warn" || c.UploadTTL != 2*time.Hour {
		t.Errorf("log-level %q, upload-ttl %v: the file must win over defaults", c.LogLevel, c.UploadTTL)
	}
	if c.BlobURL != "" || c.BlobRedirect {
		t.Errorf("blob-url %q, blob-redirect %v: the filesystem must be the default", c.BlobURL, c.BlobRedirect)
	}
	if c, err := parse(t, []string{"--blob-redirect"}, map[string]string{"HALLMARK_BLOB_URL": "s3://b-1/p"}, ""); err != nil || c.BlobURL != "s3://b-1/p" || !c.BlobRedirect || c.Validate() != nil {
		t.Errorf("HALLMARK_BLOB_URL and --blob-redirect: %+v, %v", c, err)
	}
	if c, err := parse(t, []string{"--blob-cache-size", "20GiB"}, map[string]string{"HALLMARK_BLOB_URL": "s3://b-1/p"}, ""); err != nil || c.Validate() != nil {
		t.Errorf("--blob-cache-size 20GiB: %v / %v", err, c.Validate())
	} else if n, err := c.BlobCacheBytes(); n != 20<<30 || err != nil {
		t.Errorf("20GiB = %d bytes, %v", n, err)
	}
	for _, off := range []string{"", "0"} {
		if n, err := (&Server{BlobCacheSize: off}).BlobCacheBytes(); n != 0 || err != nil {
			t.Errorf("blob-cache-size %q: %d, %v", off, n, err)
		}
	}
	if c.LogFormat != "json" || c.ShutdownTimeout != 30*time.Second {
		t.Errorf("defaults lost: log-format %q, shutdown-timeout %v", c.LogFormat, c.ShutdownTimeout)
	}
}

// TestSparseManifestsFlag: --sparse-manifests is off by default and can be
// switched on by flag, HALLMARK_SPARSE_MANIFESTS or the file key.
func TestSparseManifestsFlag(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		file string
		want bool
	}{
		{"default", nil, nil, "", false},
		{"flag", []string{"--sparse-manifests"}, nil, "", true},
		{"env", nil, map[string]string{"HALLMARK_SPARSE_MANIFESTS": "true"}, "", true},
		{"file", nil, nil, "sparse-manifests: true\n", true},
		{"flag off wins over env", []string{"--sparse-manifests=false"}, map[string]string{"HALLMARK_SPARSE_MANIFESTS": "true"}, "", false},
		{"env off wins over file", nil, map[string]string{"HALLMARK_SPARSE_MANIFESTS": "false"}, "sparse-manifests: true\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parse(t, tc.args, tc.env, tc.file)
			if err != nil {
				t.Fatal(err)
			}
			if c.SparseManifests != tc.want {
				t.Errorf("SparseManifests = %v, want %v", c.SparseManifests, tc.want)
			}
		})
	}
	if _, err := parse(t, nil, map[string]string{"HALLMARK_SPARSE_MANIFESTS": "sometimes"}, ""); err == nil || !strings.Contains(err.Error(), "HALLMARK_SPARSE_MANIFESTS") {
		t.Errorf("malformed HALLMARK_SPARSE_MANIFESTS: %v", err)
	}
}

func TestFileListsAndSlices(t *testing.T) {
	c, err := parse(t, nil, nil, "trusted-key: [a.pub, b.pub]\n")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.TrustedKeys, ",") != "a.pub,b.pub" {
		t.Fatalf("trusted-key = %q", c.TrustedKeys)
	}
	c, err = parse(t, nil, map[string]string{"HALLMARK_TRUSTED_KEY": "x.pub,y.pub"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.TrustedKeys, ",") != "x.pub,y.pub" {
		t.Fatalf("trusted-key from env = %q", c.TrustedKeys)
	}
}

func TestMalformedConfigIsAClearError(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		env        map[string]string
		want       string
	}{
		{"unknown key", "adr: 127.0.0.1:5000\n", nil, `unknown key "adr"`},
		{"config key in the file", "config: other.yaml\n", nil, `unknown key "config"`},
		{"not YAML", "addr: [unclosed\n", nil, "not valid YAML"},
		{"not a mapping", "- a\n- b\n", nil, "not valid YAML"},
		{"bad duration in file", "upload-ttl: soon\n", nil, "config file key upload-ttl"},
		{"bad number in env", "", map[string]string{"HALLMARK_MAX_MANIFEST_SIZE": "big"}, "HALLMARK_MAX_MANIFEST_SIZE"},
		{"bad bool in env", "", map[string]string{"HALLMARK_INSECURE_HTTP": "maybe"}, "HALLMARK_INSECURE_HTTP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(t, nil, tc.env, tc.file)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
	if _, err := parse(t, nil, nil, ""); err != nil {
		t.Fatalf("no file, no env: %v", err)
	}
	c := Defaults()
	fs := pflag.NewFlagSet("server", pflag.ContinueOnError)
	c.BindFlags(fs)
	if err := Apply(fs, filepath.Join(t.TempDir(), "missing.yaml"), func(string) (string, bool) { return "", false }); err == nil || !strings.Contains(err.Error(), "config file") {
		t.Fatalf("missing file: %v", err)
	}
}

func TestValidateSaysWhatToFix(t *testing.T) {
	d := Defaults()
	if err := d.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	for _, tc := range []struct {
		name string
		mod  func(*Server)
		want string
	}{
		{"addr", func(c *Server) { c.Addr = "nowhere" }, "addr"},
		{"data dir", func(c *Server) { c.DataDir = "" }, "data-dir"},
		{"log level", func(c *Server) { c.LogLevel = "loud" }, "log-level"},
		{"debug addr not loopback", func(c *Server) { c.DebugAddr = "0.0.0.0:6060" }, "loopback"},
		{"debug addr no port", func(c *Server) { c.DebugAddr = "127.0.0.1" }, "debug-addr"},
		{"CA key type", func(c *Server) { c.CAKeyType = "rsa-2048" }, "ca-key-type"},
		{"log format", func(c *Server) { c.LogFormat = "xml" }, "log-format"},
		{"manifest size", func(c *Server) { c.MaxManifestSize = 1 << 20 }, "4 MiB"},
		{"upload ttl", func(c *Server) { c.UploadTTL = 0 }, "upload-ttl"},
		{"body read timeout", func(c *Server) { c.BodyReadTimeout = 0 }, "body-read-timeout"},
		{"tuf timestamp expiry short", func(c *Server) { c.TUFTimestampExpiry = time.Second }, "tuf-timestamp-expiry"},
		{"tuf timestamp expiry long", func(c *Server) { c.TUFTimestampExpiry = 15 * 24 * time.Hour }, "tuf-timestamp-expiry"},
		{"external url path", func(c *Server) { c.ExternalURL = "http://h/x" }, "external-url"},
		{"external url scheme", func(c *Server) { c.ExternalURL = "ftp://h" }, "external-url"},
		{"blob url scheme", func(c *Server) { c.BlobURL = "gs://bucket" }, "blob-url"},
		{"blob redirect on fs", func(c *Server) { c.BlobRedirect = true }, "blob-redirect"},
		{"blob cache on fs", func(c *Server) { c.BlobCacheSize = "1GiB" }, "needs an S3 blob-url"},
		{"blob cache with redirect", func(c *Server) { c.BlobURL, c.BlobRedirect, c.BlobCacheSize = "s3://b/p", true, "1GiB" }, "exclude each other"},
		{"blob cache size", func(c *Server) { c.BlobURL, c.BlobCacheSize = "s3://b/p", "lots" }, "blob-cache-size"},
		{"blob cache size negative", func(c *Server) { c.BlobURL, c.BlobCacheSize = "s3://b/p", "-1GiB" }, "blob-cache-size"},
		{"blob cache size overflow", func(c *Server) { c.BlobURL, c.BlobCacheSize = "s3://b/p", "16EiB" }, "blob-cache-size"},
		{"gc interval", func(c *Server) { c.GCInterval = -time.Second }, "gc-interval"},
		{"gc grace", func(c *Server) { c.GCGrace = 500 * time.Millisecond }, "gc-grace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Defaults()
			tc.mod(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

// FuzzApply feeds arbitrary config files and environment values: Apply
// must return a value or an error, never panic, and never accept an
// unknown key.
func FuzzApply(f *testing.F) {
	f.Add("addr: 127.0.0.1:5000\ndata-dir: d\n", "")
	f.Add("trusted-key: [a, b]\noidc-issuer: [{url: https://gitlab.example.com, type: gitlab-pipeline}]\n", "1h")
	f.Add("oidc-issuer: url=https://a.example,type=email\n", "x")
	f.Add("{", "")
	f.Add("upload-ttl: [1, 2]\n", "-1s")
	f.Fuzz(func(t *testing.T, file, ttl string) {
		path := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
			t.Fatal(err)
		}
		c := Defaults()
		fs := pflag.NewFlagSet("server", pflag.ContinueOnError)
		c.BindFlags(fs)
		env := func(k string) (string, bool) {
			if k == "HALLMARK_UPLOAD_TTL" && ttl != "" {
				return ttl, true
			}
			return "", false
		}
		if err := Apply(fs, path, env); err == nil {
			_ = c.Validate()
		}
	})
}
