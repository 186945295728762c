package ca_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"testing"

	"github.com/hallmark-dev/hallmark/internal/ca"
	"github.com/hallmark-dev/hallmark/internal/oidc"
)

func seedKeys(f *testing.F) [][]byte {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	var out [][]byte
	for _, pub := range []any{ec.Public(), ed.Public(), &testRSAKeys(f)[0].PublicKey} {
		der, _ := x509.MarshalPKIXPublicKey(pub)
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), der)
	}
	out = append(out, pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&testRSAKeys(f)[0].PublicKey)}))
	return out
}

func FuzzParsePublicKey(f *testing.F) {
	for _, s := range seedKeys(f) {
		f.Add(s)
	}
	f.Add([]byte("-----BEGIN PUBLIC KEY-----\n\n-----END PUBLIC KEY-----\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := ca.ParsePublicKey(b)
		if err != nil {
			if !errors.Is(err, ca.ErrInvalidPublicKey) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if err := ca.CheckKey(k); err != nil && !errors.Is(err, ca.ErrInsecureKey) {
			t.Fatalf("unclassified error %v", err)
		}
		// A parsed key must reject an empty and a garbage proof.
		if ca.VerifyProof(k, nil, "sub") == nil || ca.VerifyProof(k, []byte{0x30, 0}, "sub") == nil {
			t.Fatal("proof accepted without a signature")
		}
	})
}

func FuzzParseCSR(f *testing.F) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, ec)
	f.Add(der)
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	rder, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{SignatureAlgorithm: x509.SHA256WithRSAPSS}, testRSAKeys(f)[0])
	f.Add(rder)
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := ca.ParseCSR(b)
		if err != nil {
			if !errors.Is(err, ca.ErrInvalidCSR) && !errors.Is(err, ca.ErrInsecureKey) && !errors.Is(err, ca.ErrInvalidSignature) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if ca.CheckKey(k) != nil {
			t.Fatal("CSR accepted with a key CheckKey rejects")
		}
	})
}

func FuzzParseV1Request(f *testing.F) {
	for _, s := range seedKeys(f)[:2] {
		f.Add(v1Body(s, []byte{0x30, 0x45, 0x02}))
	}
	f.Add([]byte(`{"publicKey":{"content":"LS0t","algorithm":"ecdsa"},"signedEmailAddress":"MEUCIQ","certificateSigningRequest":null}`))
	f.Add([]byte(`{"certificate_signing_request":"LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNU"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		kr, err := ca.ParseV1Request(b)
		if err != nil {
			if !errors.Is(err, ca.ErrInvalidRequest) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if len(kr.PublicKey) == 0 && len(kr.CSR) == 0 {
			t.Fatal("accepted a request without key or CSR")
		}
	})
}

func FuzzParseV2Request(f *testing.F) {
	for _, s := range seedKeys(f)[:1] {
		f.Add(v2Body(s, []byte{1, 2, 3}))
	}
	f.Add([]byte(`{"credentials":{"oidcIdentityToken":"eyJ"},"publicKeyRequest":{"publicKey":{"algorithm":"ED25519","content":"x"},"proofOfPossession":"AQID"}}`))
	f.Add([]byte(`{"public_key_request":{"public_key":{"content":"x"},"proof_of_possession":"AQ-_"}}`))
	f.Add([]byte(`{"certificateSigningRequest":"AQID"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, kr, err := ca.ParseV2Request(b)
		if err != nil {
			if !errors.Is(err, ca.ErrInvalidRequest) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if len(kr.PublicKey) == 0 && len(kr.CSR) == 0 {
			t.Fatal("accepted a request without key or CSR")
		}
	})
}

// FuzzPrincipalFromClaims: arbitrary (verified) claim sets never panic and
// either map to a certificate identity or fail with ErrInvalidToken.
func FuzzPrincipalFromClaims(f *testing.F) {
	g, _ := json.Marshal(map[string]any{
		"iss": "https://gitlab.com", "sub": "project_path:a/b:ref_type:branch:ref:main", "project_path": "a/b",
		"namespace_path": "a", "namespace_id": "1", "project_id": "2", "ref": "main", "ref_type": "branch",
		"sha": "abc", "pipeline_source": "push", "job_id": "3", "runner_environment": "gitlab-hosted",
		"ci_config_ref_uri": "gitlab.com/a/b//.gitlab-ci.yml@refs/heads/main", "runner_id": 1,
	})
	f.Add(g, oidc.TypeGitLab)
	f.Add([]byte(`{"iss":"https://accounts.example.com","sub":"1","email":"a@b.c","email_verified":true}`), oidc.TypeEmail)
	f.Add([]byte(`{"iss":"https://ci.example.com","sub":"spiffe://x/y"}`), oidc.TypeGeneric)
	f.Fuzz(func(t *testing.T, raw []byte, typ string) {
		var claims map[string]any
		if json.Unmarshal(raw, &claims) != nil {
			return
		}
		p, err := ca.PrincipalFromToken(tokenFromClaims(claims, typ))
		if err != nil {
			if !errors.Is(err, ca.ErrInvalidToken) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if p.Challenge == "" || p.Subject.String() == "" {
			t.Fatalf("empty identity from %s", raw)
		}
		if _, err := p.Extensions.Render(); err != nil && !errors.Is(err, ca.ErrInvalidToken) {
			t.Fatalf("render: %v", err)
		}
	})
}
