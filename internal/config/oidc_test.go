package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestParseOIDCIssuers(t *testing.T) {
	got, err := ParseOIDCIssuers("url=https://gitlab.example.com,type=gitlab-pipeline,url=https://idp.example.com/realms/ci,type=generic,subject-claim=preferred_username, https://gitlab.com")
	if err != nil {
		t.Fatal(err)
	}
	want := []OIDCIssuer{
		{URL: "https://gitlab.example.com", Type: "gitlab-pipeline"},
		{URL: "https://idp.example.com/realms/ci", Type: "generic", SubjectClaim: "preferred_username"},
		{URL: "https://gitlab.com", Type: "gitlab-pipeline"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("issuer %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	for _, bad := range []string{"type=email", "url=https://a,colour=red", "url=https://a,novalue", "gitlab.com"} {
		if _, err := ParseOIDCIssuers(bad); err == nil {
			t.Errorf("ParseOIDCIssuers(%q) accepted", bad)
		}
	}
}

func bindTest(t *testing.T) (*pflag.FlagSet, *Server) {
	c := Defaults()
	fs := pflag.NewFlagSet("server", pflag.ContinueOnError)
	c.BindFlags(fs)
	return fs, &c
}

func TestOIDCIssuerFlagEnvAndFile(t *testing.T) {
	// Repeated flags.
	fs, c := bindTest(t)
	if err := fs.Parse([]string{"--oidc-issuer", "url=https://gitlab.example.com", "--oidc-issuer", "url=https://accounts.example.com,type=email"}); err != nil {
		t.Fatal(err)
	}
	if len(c.OIDCIssuers) != 2 || c.OIDCIssuers[1].Type != "email" {
		t.Fatalf("flags: %+v", c.OIDCIssuers)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}

	// Environment: several issuers in one value.
	fs, c = bindTest(t)
	env := map[string]string{"HALLMARK_OIDC_ISSUER": "url=https://gitlab.example.com,type=gitlab-pipeline,url=https://accounts.example.com,type=email"}
	if err := Apply(fs, "", func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	if len(c.OIDCIssuers) != 2 || c.OIDCIssuers[0].URL != "https://gitlab.example.com" || c.OIDCIssuers[1].Type != "email" {
		t.Fatalf("env: %+v", c.OIDCIssuers)
	}

	// Config file: a YAML list of maps and strings.
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	os.WriteFile(ca, []byte("x"), 0o600)
	cfgFile := filepath.Join(dir, "hallmark.yaml")
	os.WriteFile(cfgFile, []byte(`oidc-issuer:
  - url: https://gitlab.example.com
    type: gitlab-pipeline
    ca-cert: `+ca+`
  - url=https://idp.example.com,type=generic,subject-claim=login
trusted-key:
  - a.pem
  - b.pem
oidc-token-ttl: 5m
`), 0o600)
	fs, c = bindTest(t)
	if err := Apply(fs, cfgFile, func(string) (string, bool) { return "", false }); err != nil {
		t.Fatal(err)
	}
	if len(c.OIDCIssuers) != 2 || c.OIDCIssuers[0].CACert != ca || c.OIDCIssuers[1].SubjectClaim != "login" {
		t.Fatalf("file: %+v", c.OIDCIssuers)
	}
	if len(c.TrustedKeys) != 2 || c.TrustedKeys[1] != "b.pem" {
		t.Fatalf("file trusted-key list: %+v", c.TrustedKeys)
	}
	if c.OIDCTokenTTL.Minutes() != 5 {
		t.Fatalf("oidc-token-ttl %v", c.OIDCTokenTTL)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestValidateOIDC(t *testing.T) {
	cases := map[string]func(*Server){
		"ftp issuer":             func(c *Server) { c.OIDCIssuers = []OIDCIssuer{{URL: "ftp://x", Type: "gitlab-pipeline"}} },
		"bad type":               func(c *Server) { c.OIDCIssuers = []OIDCIssuer{{URL: "https://x", Type: "github"}} },
		"subject-claim on email": func(c *Server) { c.OIDCIssuers = []OIDCIssuer{{URL: "https://x", Type: "email", SubjectClaim: "s"}} },
		"duplicate": func(c *Server) {
			c.OIDCIssuers = []OIDCIssuer{{URL: "https://x", Type: "email"}, {URL: "https://x", Type: "email"}}
		},
		"missing ca-cert": func(c *Server) {
			c.OIDCIssuers = []OIDCIssuer{{URL: "https://x", Type: "email", CACert: "/nonexistent/ca.pem"}}
		},
		"ttl above max":       func(c *Server) { c.OIDCTokenTTL = 2 * c.OIDCMaxTokenTTL },
		"zero ttl":            func(c *Server) { c.OIDCTokenTTL = 0 },
		"rotation shorter":    func(c *Server) { c.OIDCKeyRotation = c.OIDCMaxTokenTTL / 2 },
		"negative rotation":   func(c *Server) { c.OIDCKeyRotation = -1 },
		"zero jwks cache ttl": func(c *Server) { c.OIDCJWKSCacheTTL = 0 },
	}
	for name, mod := range cases {
		c := Defaults()
		mod(&c)
		err := c.Validate()
		if err == nil {
			t.Errorf("%s: Validate accepted", name)
		} else if !strings.Contains(err.Error(), "oidc") {
			t.Errorf("%s: error %q does not name the oidc setting", name, err)
		}
	}
}
