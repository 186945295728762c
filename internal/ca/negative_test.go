package ca_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestRejections: every way a request can be wrong gets a clear
// grpc-gateway error with Fulcio's status mapping, on both APIs.
func TestRejections(t *testing.T) {
	f := newFixture(t)
	gl := f.iss.gitlab
	claims := gl.gitlabClaims()
	sub := claims["sub"].(string)
	good := gl.mint(claims)
	k := newP256(t)
	other := newP256(t)
	pub := pubPEM(t, k.Public())
	proof := proveP256(t, k, sub)
	now := time.Now()

	stranger := newTestIssuer(t) // not trusted by the verifier
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "x"}}, k)
	if err != nil {
		t.Fatal(err)
	}
	badCSR := append([]byte(nil), csrDER...)
	badCSR[len(badCSR)-3] ^= 0xff // inside the signature
	withCSR := func(der []byte) []byte {
		b, _ := json.Marshal(map[string]any{"certificateSigningRequest": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})})
		return b
	}
	noConfigRef := gl.gitlabClaims()
	noConfigRef["ci_config_ref_uri"] = nil
	badRefType := gl.gitlabClaims()
	badRefType["ref_type"] = "merge_request"
	p224 := mustKey(ecdsa.GenerateKey(elliptic.P224(), rand.Reader)).(*ecdsa.PrivateKey)

	for _, tc := range []struct {
		name   string
		token  string
		v1, v2 []byte // request bodies (nil: derive from pub/proof)
		status int
		code   int
		msg    string
	}{
		{name: "missing token", token: "", status: 401, code: 16, msg: "no OIDC identity token"},
		{name: "expired token", token: gl.mint(merge(claims, map[string]any{"iat": now.Add(-time.Hour).Unix(), "nbf": now.Add(-time.Hour).Unix(), "exp": now.Add(-10 * time.Minute).Unix()})), status: 400, code: 3, msg: "expired"},
		{name: "wrong audience", token: gl.mint(merge(claims, map[string]any{"aud": "other"})), status: 400, code: 3, msg: "audience"},
		{name: "unknown issuer", token: stranger.mint(merge(claims, nil)), status: 400, code: 3, msg: "not a trusted issuer"},
		{name: "forged JWT signature", token: gl.mintWith(testRSAKeys(t)[1], gl.kid, claims), status: 400, code: 3, msg: "signature"},
		{name: "alg none", token: gl.mintAlgNone(claims), status: 400, code: 3, msg: "algorithm"},
		{name: "garbage token", token: "not.a.jwt", status: 400, code: 3, msg: "identity token"},
		{name: "proof over another identity", token: good, v1: v1Body(pub, proveP256(t, k, "project_path:evil/app:ref_type:branch:ref:main")), status: 400, code: 3, msg: "could not be verified"},
		{name: "proof by another key", token: good, v1: v1Body(pub, proveP256(t, other, sub)), status: 400, code: 3, msg: "could not be verified"},
		{name: "no proof", token: good, v1: v1Body(pub, nil), status: 400, code: 3, msg: "no proof of possession"},
		{name: "proof not base64", token: good, v1: []byte(`{"publicKey":{"content":"` + b64(pub) + `"},"signedEmailAddress":"%%%"}`), status: 400, code: 3, msg: "not base64"},
		{name: "CSR with bad self-signature", token: good, v1: withCSR(badCSR), v2: withCSR(badCSR), status: 400, code: 3, msg: "CSR self-signature"},
		{name: "CSR garbage", token: good, v1: withCSR([]byte("garbage")), v2: withCSR([]byte("garbage")), status: 400, code: 3, msg: "certificate signing request could not be parsed"},
		{name: "weak key", token: good, v1: v1Body(pubPEM(t, p224.Public()), proveP256(t, k, sub)), status: 400, code: 3, msg: "insecure"},
		{name: "malformed JSON", token: good, v1: []byte(`{"publicKey":`), v2: []byte(`{"publicKeyRequest":`), status: 400, code: 3, msg: "not a JSON object"},
		{name: "wrong JSON type", token: good, v1: []byte(`{"publicKey":{"content":42}}`), v2: []byte(`{"publicKeyRequest":{"publicKey":{"content":42}}}`), status: 400, code: 3, msg: "must be a JSON string"},
		{name: "malformed PEM", token: good, v1: v1Body([]byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"), proof), status: 400, code: 3, msg: "public key supplied in the request could not be parsed"},
		{name: "private key sent as public key", token: good, v1: v1Body(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte{1}}), proof), status: 400, code: 3, msg: `PEM block "EC PRIVATE KEY"`},
		{name: "no key at all", token: good, v1: []byte(`{"certificateSigningRequest":null}`), v2: []byte(`{}`), status: 400, code: 3, msg: "neither"},
		{name: "GitLab token without ci_config_ref_uri", token: gl.mint(noConfigRef), status: 400, code: 3, msg: "ci_config_ref_uri"},
		{name: "GitLab token with odd ref_type", token: gl.mint(badRefType), status: 400, code: 3, msg: "ref_type"},
		{name: "unverified email", token: f.iss.email.mint(map[string]any{"sub": "u1", "email": "a@example.com", "email_verified": false}), status: 400, code: 3, msg: "not verified"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v1 := tc.v1
			if v1 == nil {
				v1 = v1Body(pub, proof)
			}
			v2 := tc.v2
			if v2 == nil {
				v2 = v1ToV2(t, v1)
			}
			for _, api := range []struct {
				path string
				body []byte
			}{{"/api/v1/signingCert", v1}, {"/api/v2/signingCert", v2}} {
				status, hdr, body := f.post(t, api.path, tc.token, api.body)
				if status != tc.status {
					t.Errorf("%s: status %d, want %d: %s", api.path, status, tc.status, body)
					continue
				}
				if !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
					t.Errorf("%s: Content-Type %q", api.path, hdr.Get("Content-Type"))
				}
				checkError(t, body, tc.code, tc.msg)
				if strings.Contains(string(body), tc.token) && tc.token != "" {
					t.Errorf("%s: error body echoes the token", api.path)
				}
			}
		})
	}
	// Wrong method: the route exists only for POST.
	if status, _, _ := f.get(t, "/api/v1/signingCert"); status != http.StatusMethodNotAllowed {
		t.Errorf("GET signingCert: status %d, want 405", status)
	}
}

func merge(a, b map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// v1ToV2 converts a legacy body into the v2 shape (token in the header).
func v1ToV2(t *testing.T, v1 []byte) []byte {
	t.Helper()
	var in map[string]json.RawMessage
	if err := json.Unmarshal(v1, &in); err != nil {
		return v1 // malformed on purpose: same bytes
	}
	var pk struct {
		Content []byte `json:"content"`
	}
	json.Unmarshal(in["publicKey"], &pk)
	out := map[string]any{}
	if len(pk.Content) > 0 {
		out["publicKeyRequest"] = map[string]any{
			"publicKey":         map[string]any{"content": string(pk.Content)},
			"proofOfPossession": in["signedEmailAddress"],
		}
	}
	if c, ok := in["certificateSigningRequest"]; ok {
		out["certificateSigningRequest"] = c
	}
	b, _ := json.Marshal(out)
	return b
}

// TestIssuerUnavailable: when a trusted issuer's keys cannot be fetched the
// CA answers 503 (retryable), not 400.
func TestIssuerUnavailable(t *testing.T) {
	f := newFixture(t)
	gl := f.iss.gitlab
	claims := gl.gitlabClaims()
	tok := gl.mint(claims)
	k := newP256(t)
	gl.srv.Close() // discovery and JWKS now unreachable; nothing cached yet
	status, _, body := f.post(t, "/api/v1/signingCert", tok, v1Body(pubPEM(t, k.Public()), proveP256(t, k, claims["sub"].(string))))
	if status != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503: %s", status, body)
	}
	checkError(t, body, 14, "retry later")
}
