package config

import (
	"strings"
	"testing"
)

// TestTokenServiceConfig: --auth=token needs all four --token-* settings
// (flag, env or file), a realm that is https unless on loopback, and the
// --token-* settings are refused with any other auth mode, so a
// misconfiguration does not silently run a registry with other auth.
func TestTokenServiceConfig(t *testing.T) {
	full := []string{"--auth", "token", "--token-realm", "https://gitlab.example.com/jwt/auth", "--token-service", "container_registry",
		"--token-issuer", "gitlab-issuer", "--token-cert", "/etc/hallmark/gitlab-registry.crt"}
	without := func(flag string) []string {
		var out []string
		for i := 0; i < len(full); i += 2 {
			if full[i] != flag {
				out = append(out, full[i], full[i+1])
			}
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		file    string
		wantErr string
	}{
		{name: "all flags", args: full},
		{name: "env", env: map[string]string{"HALLMARK_AUTH": "token", "HALLMARK_TOKEN_REALM": "https://gitlab.example.com/jwt/auth",
			"HALLMARK_TOKEN_SERVICE": "container_registry", "HALLMARK_TOKEN_ISSUER": "gitlab-issuer", "HALLMARK_TOKEN_CERT": "/c.pem"}},
		{name: "file", file: "auth: token\ntoken-realm: https://gitlab.example.com/jwt/auth\ntoken-service: container_registry\ntoken-issuer: gitlab-issuer\ntoken-cert: /c.pem\n"},
		{name: "loopback http realm", args: append(without("--token-realm"), "--token-realm", "http://127.0.0.1:8080/jwt/auth")},
		{name: "localhost http realm", args: append(without("--token-realm"), "--token-realm", "http://localhost/jwt/auth")},
		{name: "no realm", args: without("--token-realm"), wantErr: "auth=token needs token-realm"},
		{name: "no service", args: without("--token-service"), wantErr: "auth=token needs token-service"},
		{name: "no issuer", args: without("--token-issuer"), wantErr: "auth=token needs token-issuer"},
		{name: "no cert", args: without("--token-cert"), wantErr: "auth=token needs token-cert"},
		{name: "plain http realm", args: append(without("--token-realm"), "--token-realm", "http://gitlab.example.com/jwt/auth"), wantErr: "must be https"},
		{name: "realm not a URL", args: append(without("--token-realm"), "--token-realm", "gitlab.example.com/jwt/auth"), wantErr: "want an http(s) URL"},
		{name: "token flags with auth on", args: append(without("--auth"), "--auth", "on"), wantErr: "need auth=token"},
		{name: "one token flag with auth on", args: []string{"--token-issuer", "gitlab-issuer"}, wantErr: "need auth=token"},
		{name: "unknown auth", args: []string{"--auth", "gitlab"}, wantErr: `use on, token or off`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parse(t, tc.args, tc.env, tc.file)
			if err != nil {
				t.Fatal(err)
			}
			err = c.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("valid token service settings refused: %v", err)
				}
				if c.Auth != "token" || c.TokenService != "container_registry" || c.TokenIssuer != "gitlab-issuer" || c.TokenCert == "" {
					t.Errorf("settings not read: %+v", c)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestTokenModeNeedsTLSOffLoopback: auth=token is access control like
// auth=on: off loopback it still wants TLS (access tokens cross the
// network) or --insecure-http behind a proxy.
func TestTokenModeNeedsTLSOffLoopback(t *testing.T) {
	c, err := parse(t, []string{"--addr", "0.0.0.0:5000", "--auth", "token", "--token-realm", "https://gitlab.example.com/jwt/auth",
		"--token-service", "container_registry", "--token-issuer", "gitlab-issuer", "--token-cert", "/c.pem"}, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "refusing plain HTTP") {
		t.Fatalf("auth=token on 0.0.0.0 without TLS: %v", err)
	}
	c.InsecureHTTP = true
	if err := c.Validate(); err != nil {
		t.Fatalf("auth=token on 0.0.0.0 behind a TLS proxy: %v", err)
	}
}
