package ca_test

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/hallmark-dev/hallmark/internal/ca"
	"github.com/hallmark-dev/hallmark/internal/oidc"
	"github.com/hallmark-dev/hallmark/pkg/fulcio"
)

type golden struct {
	Claims     map[string]any    `json:"claims"`
	SANURI     string            `json:"san_uri"`
	Challenge  string            `json:"challenge"`
	Extensions map[string]string `json:"extensions"`
}

func loadGolden(t *testing.T) golden {
	t.Helper()
	raw, err := os.ReadFile("testdata/gitlab-fulcio.json")
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

func tokenFromClaims(claims map[string]any, typ string) *oidc.Token {
	iss, _ := claims["iss"].(string)
	sub, _ := claims["sub"].(string)
	return &oidc.Token{Issuer: iss, Subject: sub, IssuerType: typ, Identity: sub, Claims: claims}
}

// renderedValues decodes rendered extensions into OID -> string.
func renderedValues(t *testing.T, exts []pkix.Extension) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, e := range exts {
		if e.Id.Equal(fulcio.OIDIssuerV1) {
			out[e.Id.String()] = string(e.Value) // raw, no tag
			continue
		}
		var s string
		rest, err := asn1.UnmarshalWithParams(e.Value, &s, "utf8")
		if err != nil || len(rest) > 0 {
			t.Fatalf("%s: not a DER UTF8String: %x", e.Id, e.Value)
		}
		out[e.Id.String()] = s
	}
	return out
}

// TestGitLabGoldenFulcio: a gitlab.com token maps to exactly the SAN and
// extension values Fulcio produces for it.
func TestGitLabGoldenFulcio(t *testing.T) {
	g := loadGolden(t)
	p, err := ca.PrincipalFromToken(tokenFromClaims(g.Claims, oidc.TypeGitLab))
	if err != nil {
		t.Fatal(err)
	}
	if p.Subject.URI == nil || p.Subject.URI.String() != g.SANURI || p.Subject.Email != "" {
		t.Errorf("SAN %v, want URI %s", p.Subject, g.SANURI)
	}
	if p.Challenge != g.Challenge {
		t.Errorf("challenge %q, want %q", p.Challenge, g.Challenge)
	}
	exts, err := p.Extensions.Render()
	if err != nil {
		t.Fatal(err)
	}
	got := renderedValues(t, exts)
	for oid, want := range g.Extensions {
		if got[oid] != want {
			t.Errorf("%s = %q, want %q", oid, got[oid], want)
		}
	}
	for oid := range got {
		if _, ok := g.Extensions[oid]; !ok {
			t.Errorf("unexpected extension %s = %q", oid, got[oid])
		}
	}
	// Fulcio's raw .1.8 encoding of the issuer (sigstore-server.md A6 worked example form).
	for _, e := range exts {
		if e.Id.Equal(fulcio.OIDIssuerV2) && string(e.Value) != "\x0c\x12https://gitlab.com" {
			t.Errorf(".1.8 bytes %x", e.Value)
		}
		if e.Critical {
			t.Errorf("%s is critical", e.Id)
		}
	}
}

// TestGitLabSelfManagedAndBuiltIn: URLs come from the token's issuer, and
// the SAN scheme follows a loopback http issuer.
func TestGitLabSelfManagedAndBuiltIn(t *testing.T) {
	base := loadGolden(t).Claims
	for _, tc := range []struct {
		name, iss, configRef, wantSAN, wantRepo, wantRun string
		extra                                            map[string]any
	}{
		{
			name: "self-managed https", iss: "https://gitlab.example.com",
			configRef: "gitlab.example.com/grp/proj//.gitlab-ci.yml@refs/heads/main",
			wantSAN:   "https://gitlab.example.com/grp/proj//.gitlab-ci.yml@refs/heads/main",
			wantRepo:  "https://gitlab.example.com/grp/proj", wantRun: "https://gitlab.example.com/grp/proj/-/jobs/302",
		},
		{
			name: "built-in loopback http issuer", iss: "http://127.0.0.1:41234",
			configRef: "127.0.0.1:41234/grp/proj//.gitlab-ci.yml@refs/heads/main",
			wantSAN:   "http://127.0.0.1:41234/grp/proj//.gitlab-ci.yml@refs/heads/main",
			wantRepo:  "http://127.0.0.1:41234/grp/proj", wantRun: "http://127.0.0.1:41234/grp/proj/-/jobs/302",
		},
		{
			name: "config on another host stays https", iss: "http://127.0.0.1:41234",
			configRef: "gitlab.com/grp/proj//.gitlab-ci.yml@refs/heads/main",
			wantSAN:   "https://gitlab.com/grp/proj//.gitlab-ci.yml@refs/heads/main",
			wantRepo:  "http://127.0.0.1:41234/grp/proj", wantRun: "http://127.0.0.1:41234/grp/proj/-/jobs/302",
		},
		{
			name: "tag, numeric ids, environment", iss: "https://gitlab.example.com/",
			configRef: "gitlab.example.com/grp/proj//.gitlab-ci.yml@refs/tags/v1",
			wantSAN:   "https://gitlab.example.com/grp/proj//.gitlab-ci.yml@refs/tags/v1",
			wantRepo:  "https://gitlab.example.com/grp/proj", wantRun: "https://gitlab.example.com/grp/proj/-/jobs/302",
			extra: map[string]any{"ref": "v1", "ref_type": "tag", "project_id": float64(20), "environment": "production"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := merge(base, map[string]any{"iss": tc.iss, "ci_config_ref_uri": tc.configRef, "project_path": "grp/proj", "namespace_path": "grp", "job_id": "302"})
			for k, v := range tc.extra {
				c[k] = v
			}
			p, err := ca.PrincipalFromToken(tokenFromClaims(c, oidc.TypeGitLab))
			if err != nil {
				t.Fatal(err)
			}
			exts, err := p.Extensions.Render()
			if err != nil {
				t.Fatal(err)
			}
			got := renderedValues(t, exts)
			if p.Subject.URI.String() != tc.wantSAN || got["1.3.6.1.4.1.57264.1.9"] != tc.wantSAN || got["1.3.6.1.4.1.57264.1.18"] != tc.wantSAN {
				t.Errorf("SAN %s / build signer %s, want %s", p.Subject.URI, got["1.3.6.1.4.1.57264.1.9"], tc.wantSAN)
			}
			if got["1.3.6.1.4.1.57264.1.12"] != tc.wantRepo || got["1.3.6.1.4.1.57264.1.21"] != tc.wantRun {
				t.Errorf("repo %q run %q", got["1.3.6.1.4.1.57264.1.12"], got["1.3.6.1.4.1.57264.1.21"])
			}
			if got["1.3.6.1.4.1.57264.1.1"] != tc.iss {
				t.Errorf("issuer %q", got["1.3.6.1.4.1.57264.1.1"])
			}
			if tc.extra != nil {
				if got["1.3.6.1.4.1.57264.1.14"] != "refs/tags/v1" || got["1.3.6.1.4.1.57264.1.15"] != "20" || got["1.3.6.1.4.1.57264.1.23"] != "production" {
					t.Errorf("ref %q id %q env %q", got["1.3.6.1.4.1.57264.1.14"], got["1.3.6.1.4.1.57264.1.15"], got["1.3.6.1.4.1.57264.1.23"])
				}
			} else if _, ok := got["1.3.6.1.4.1.57264.1.23"]; ok {
				t.Error("deployment environment present without an environment claim")
			}
		})
	}
}

// TestIssuedGitLabCertificateExtensions: the certificate issued over HTTP
// for a real signed GitLab-style token carries every extension.
func TestIssuedGitLabCertificateExtensions(t *testing.T) {
	f := newFixture(t)
	gl := f.iss.gitlab
	claims := gl.gitlabClaims()
	k := newP256(t)
	status, _, body := f.post(t, "/api/v2/signingCert", gl.mint(claims), v2Body(pubPEM(t, k.Public()), proveP256(t, k, claims["sub"].(string))))
	if status != 200 {
		t.Fatalf("status %d: %s", status, body)
	}
	var resp struct {
		SignedCertificateEmbeddedSct struct {
			Chain struct{ Certificates []string } `json:"chain"`
		} `json:"signedCertificateEmbeddedSct"`
	}
	json.Unmarshal(body, &resp)
	leaf := parsePEMChain(t, []byte(resp.SignedCertificateEmbeddedSct.Chain.Certificates[0]))[0]
	u := gl.URL
	san := u + "/grp/app//.gitlab-ci.yml@refs/heads/main"
	want := map[int]string{
		8: u, 9: san, 10: claims["ci_config_sha"].(string), 11: "self-hosted", 12: u + "/grp/app",
		13: claims["sha"].(string), 14: "refs/heads/main", 15: "20", 16: u + "/grp", 17: "72", 18: san,
		19: claims["ci_config_sha"].(string), 20: "push", 21: u + "/grp/app/-/jobs/302", 22: "internal",
		24: claims["sub"].(string),
	}
	e1, _ := extValue(leaf, fulcio.OIDIssuerV1)
	if string(e1.Value) != u {
		t.Errorf(".1.1 = %q", e1.Value)
	}
	for n, v := range want {
		e, ok := extValue(leaf, asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, n})
		if !ok {
			t.Errorf(".1.%d missing", n)
			continue
		}
		if got := derString(t, e.Value); got != v {
			t.Errorf(".1.%d = %q, want %q", n, got, v)
		}
	}
	if _, ok := extValue(leaf, asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 23}); ok {
		t.Error(".1.23 present without environment")
	}
}

// TestGenericAndEmailIdentities: SAN type by issuer type.
func TestGenericAndEmailIdentities(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name   string
		iss    *testIssuer
		claims map[string]any
		check  func(t *testing.T, f *fixture, body []byte)
	}{
		{"email", f.iss.email, map[string]any{"sub": "1234", "email": "dev@example.com", "email_verified": true}, func(t *testing.T, _ *fixture, body []byte) {
			leaf := parsePEMChain(t, body)[0]
			if len(leaf.EmailAddresses) != 1 || leaf.EmailAddresses[0] != "dev@example.com" || len(leaf.URIs) != 0 {
				t.Errorf("SAN email %v uri %v", leaf.EmailAddresses, leaf.URIs)
			}
		}},
		{"generic URI subject", f.iss.generic, map[string]any{"sub": "https://ci.example.com/pipelines/7"}, func(t *testing.T, _ *fixture, body []byte) {
			leaf := parsePEMChain(t, body)[0]
			if len(leaf.URIs) != 1 || leaf.URIs[0].String() != "https://ci.example.com/pipelines/7" {
				t.Errorf("SAN URI %v", leaf.URIs)
			}
		}},
		{"generic username subject", f.iss.generic, map[string]any{"sub": "builder-7"}, func(t *testing.T, _ *fixture, body []byte) {
			leaf := parsePEMChain(t, body)[0]
			san, ok := extValue(leaf, asn1.ObjectIdentifier{2, 5, 29, 17})
			if !ok || !san.Critical {
				t.Fatal("no critical SAN")
			}
			// SEQUENCE { [0] { OID 1.3.6.1.4.1.57264.1.7, [0] { UTF8String } } }
			var seq asn1.RawValue
			asn1.Unmarshal(san.Value, &seq)
			var gn asn1.RawValue
			asn1.Unmarshal(seq.Bytes, &gn)
			var oid asn1.ObjectIdentifier
			rest, _ := asn1.Unmarshal(gn.Bytes, &oid)
			var explicit asn1.RawValue
			asn1.Unmarshal(rest, &explicit)
			var name string
			asn1.UnmarshalWithParams(explicit.Bytes, &name, "utf8")
			if gn.Tag != 0 || !oid.Equal(fulcio.OIDOtherName) || name != "builder-7" {
				t.Errorf("OtherName SAN: tag %d oid %s name %q", gn.Tag, oid, name)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := newP256(t)
			challenge := tc.claims["sub"].(string)
			if e, ok := tc.claims["email"].(string); ok {
				challenge = e
			}
			status, _, body := f.post(t, "/api/v1/signingCert", tc.iss.mint(tc.claims), v1Body(pubPEM(t, k.Public()), proveP256(t, k, challenge)))
			if status != http.StatusCreated {
				t.Fatalf("status %d: %s", status, body)
			}
			chain := parsePEMChain(t, body)
			verifyLeaf(t, f.ca, chain)
			e1, _ := extValue(chain[0], fulcio.OIDIssuerV1)
			if string(e1.Value) != tc.iss.URL {
				t.Errorf(".1.1 = %q, want %q", e1.Value, tc.iss.URL)
			}
			tc.check(t, f, body)
		})
	}
}

// TestTrustEndpoints: trustBundle, rootCert and configuration.
func TestTrustEndpoints(t *testing.T) {
	f := newFixture(t)
	chain := f.ca.Chain()

	status, _, body := f.get(t, "/api/v2/trustBundle")
	var tb struct {
		Chains []struct {
			Certificates []string `json:"certificates"`
		} `json:"chains"`
	}
	if status != 200 || json.Unmarshal(body, &tb) != nil || len(tb.Chains) != 1 || len(tb.Chains[0].Certificates) != 2 {
		t.Fatalf("trustBundle %d %s", status, body)
	}
	for i, p := range tb.Chains[0].Certificates {
		if c := parsePEMChain(t, []byte(p)); len(c) != 1 || !c[0].Equal(chain[i]) {
			t.Errorf("trustBundle certificate %d is not the CA's", i)
		}
	}

	status, hdr, body := f.get(t, "/api/v1/rootCert")
	certs := parsePEMChain(t, body)
	if status != 200 || hdr.Get("Content-Type") != "application/pem-certificate-chain" || len(certs) != 2 || !certs[0].Equal(chain[0]) || !certs[1].Equal(chain[1]) {
		t.Errorf("rootCert %d %q: %d certificates", status, hdr.Get("Content-Type"), len(certs))
	}
	if strings.TrimSpace(string(body)) != string(body) {
		t.Error("rootCert body not trimmed")
	}

	status, _, body = f.get(t, "/api/v2/configuration")
	var cfg struct {
		Issuers []struct {
			IssuerURL      string `json:"issuerUrl"`
			Audience       string `json:"audience"`
			ChallengeClaim string `json:"challengeClaim"`
			IssuerType     string `json:"issuerType"`
		} `json:"issuers"`
	}
	if status != 200 || json.Unmarshal(body, &cfg) != nil || len(cfg.Issuers) != 3 {
		t.Fatalf("configuration %d %s", status, body)
	}
	want := map[string]string{f.iss.gitlab.URL: "sub", f.iss.email.URL: "email", f.iss.generic.URL: "sub"}
	for _, i := range cfg.Issuers {
		if want[i.IssuerURL] != i.ChallengeClaim || i.Audience != "sigstore" || i.IssuerType == "" {
			t.Errorf("issuer %+v", i)
		}
	}
}
