package config

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestValidateDatabaseURL(t *testing.T) {
	for _, c := range []struct {
		in string
		ok bool
	}{
		{"", true},
		{"postgres://hallmark:secret@db.example:5432/hallmark?sslmode=verify-full", true},
		{"postgresql://db/hallmark", true},
		{"postgres:///hallmark?host=/run/postgresql", true},
		{"mysql://u:secret@db/x", false},
		{"sqlite:///var/lib/hallmark.db", false},
		{"postgres:hallmark", false},
		{"db.example:5432", false},
		{"postgres://u:sec ret@db/%zz", false},
		{"://secret", false},
		{"host=db user=hallmark password=secret", false},
	} {
		err := ValidateDatabaseURL(c.in)
		if (err == nil) != c.ok {
			t.Errorf("ValidateDatabaseURL(%q) = %v, want ok=%v", c.in, err, c.ok)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("ValidateDatabaseURL(%q) repeats the password: %v", c.in, err)
		}
	}
}

func TestDatabaseURLFlagAndEnv(t *testing.T) {
	c := Defaults()
	fs := pflag.NewFlagSet("server", pflag.ContinueOnError)
	c.BindFlags(fs)
	if err := Apply(fs, "", func(k string) (string, bool) {
		if k == "HALLMARK_DATABASE_URL" {
			return "postgres://h:pw@db/x", true
		}
		return "", false
	}); err != nil {
		t.Fatal(err)
	}
	if c.DatabaseURL != "postgres://h:pw@db/x" {
		t.Fatalf("DatabaseURL from env = %q", c.DatabaseURL)
	}
	c.DatabaseURL = "mysql://x"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "database-url") {
		t.Fatalf("Validate accepted a mysql URL: %v", err)
	}
}

// TestKeyEncryptionKeyRequired: keys in PostgreSQL need a key encryption
// key, given once; without PostgreSQL one is a mistake. The YAML file
// cannot carry the key itself (only its file).
func TestKeyEncryptionKeyRequired(t *testing.T) {
	for _, c := range []struct {
		db, file, value string
		want            string // "" for valid
	}{
		{"", "", "", ""},
		{"postgres://db/x", "/etc/hallmark/kek", "", ""},
		{"postgres://db/x", "", "c2VjcmV0", ""},
		{"postgres://db/x", "", "", "key-encryption-key-file"},
		{"postgres://db/x", "/etc/hallmark/kek", "c2VjcmV0", "not both"},
		{"", "/etc/hallmark/kek", "", "only used with database-url"},
		{"", "", "c2VjcmV0", "only used with database-url"},
	} {
		cfg := Defaults()
		cfg.DatabaseURL, cfg.KeyEncryptionKeyFile, cfg.KeyEncryptionKey = c.db, c.file, c.value
		err := cfg.Validate()
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%+v: %v, want %q", c, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "c2VjcmV0") {
			t.Errorf("the error repeats the key: %v", err)
		}
	}
	c := Defaults()
	fs := pflag.NewFlagSet("server", pflag.ContinueOnError)
	c.BindFlags(fs)
	path := filepath.Join(t.TempDir(), "hallmark.yaml")
	os.WriteFile(path, []byte("key-encryption-key: c2VjcmV0\n"), 0o600)
	if err := Apply(fs, path, func(string) (string, bool) { return "", false }); err == nil || !strings.Contains(err.Error(), "unknown key") {
		t.Fatalf("a config file with the key itself: %v", err)
	}
	os.WriteFile(path, []byte("key-encryption-key-file: /etc/hallmark/kek\n"), 0o600)
	if err := Apply(fs, path, func(string) (string, bool) { return "", false }); err != nil || c.KeyEncryptionKeyFile != "/etc/hallmark/kek" {
		t.Fatalf("key-encryption-key-file from the config file: %q %v", c.KeyEncryptionKeyFile, err)
	}
}

// FuzzValidateDatabaseURL: no input panics, and no error repeats the
// password of a URL.
func FuzzValidateDatabaseURL(f *testing.F) {
	for _, s := range []string{"", "postgres://u:p@h:1/d?sslmode=disable", "postgresql:///d?host=/tmp", "mysql://u:p@h/d", "postgres:x", "%", "postgres://[::1]:5432/d", "postgres://u:p%40ss@h/d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := ValidateDatabaseURL(s)
		if err == nil {
			return
		}
		if u, perr := url.Parse(s); perr == nil && u.User != nil {
			pw, ok := u.User.Password()
			if ok && len(pw) >= 4 && strings.Contains(err.Error(), pw) && !strings.Contains(u.Scheme+databaseURLHelp, pw) {
				t.Fatalf("error %q repeats the password of %q", err, s)
			}
		}
	})
}

// TestScaleOutExample: the replicas' configuration in examples/scale-out
// (the YAML file, the environment file and the systemd unit's flags) is
// accepted as a replica would load it, and says what the README promises.
func TestScaleOutExample(t *testing.T) {
	dir := filepath.Join("..", "..", "examples", "scale-out")
	raw, err := os.ReadFile(filepath.Join(dir, "hallmark.env"))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, l := range strings.Split(string(raw), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && !strings.HasPrefix(l, "#") {
			env[k] = v
		}
	}
	file, err := os.ReadFile(filepath.Join(dir, "hallmark.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := parse(t, []string{"--addr", "0.0.0.0:5001", "--data-dir", "/var/lib/hallmark/5001"}, env, string(file))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("the example does not validate: %v", err)
	}
	if !strings.HasPrefix(c.DatabaseURL, "postgres://") || !strings.HasPrefix(c.BlobURL, "s3://") || c.KeyEncryptionKeyFile == "" ||
		c.ExternalURL == "" || len(c.TrustedProxies) == 0 || !c.InsecureHTTP {
		t.Errorf("the example lacks a replica setting: %+v", c)
	}
	if n, err := c.BlobCacheBytes(); n != 20<<30 || err != nil {
		t.Errorf("the example's blob cache: %d bytes, %v", n, err)
	}
}
