package ca_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"strings"
	"testing"
	"time"

	ct "github.com/google/certificate-transparency-go"
	"github.com/google/certificate-transparency-go/ctutil"
	cttls "github.com/google/certificate-transparency-go/tls"
	ctx509 "github.com/google/certificate-transparency-go/x509"

	"github.com/hallmark-dev/hallmark/internal/ca"
	"github.com/hallmark-dev/hallmark/pkg/fulcio"
)

// verifyLeaf checks what a sigstore client checks: the chain to the CA's
// root with EKU codeSigning, and the embedded SCT with the CT log key
// (certificate-transparency-go's ctutil.VerifySCT, embedded=true).
func verifyLeaf(t *testing.T, c *ca.CA, chain []*x509.Certificate) {
	t.Helper()
	if len(chain) != 3 {
		t.Fatalf("chain has %d certificates, want leaf, intermediate, root", len(chain))
	}
	want := c.Chain()
	if !chain[1].Equal(want[0]) || !chain[2].Equal(want[1]) {
		t.Fatal("response chain is not the CA's intermediate and root")
	}
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(chain[2])
	inters.AddCert(chain[1])
	// Go does not parse OtherName SANs; like cosign and sigstore-go, accept
	// the critical SAN as handled before chain verification.
	leaf := *chain[0]
	leaf.UnhandledCriticalExtensions = nil
	for _, oid := range chain[0].UnhandledCriticalExtensions {
		if !oid.Equal(asn1.ObjectIdentifier{2, 5, 29, 17}) {
			leaf.UnhandledCriticalExtensions = append(leaf.UnhandledCriticalExtensions, oid)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: inters, CurrentTime: chain[0].NotBefore.Add(time.Second),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
	}); err != nil {
		t.Fatalf("leaf does not chain to the root: %v", err)
	}
	verifySCT(t, c.CTLogPublicKey(), chain[0], chain[1])
}

func verifySCT(t *testing.T, ctKey crypto.PublicKey, leaf, issuer *x509.Certificate) {
	t.Helper()
	l, err := ctx509.ParseCertificate(leaf.Raw)
	if err != nil {
		t.Fatal(err)
	}
	i, err := ctx509.ParseCertificate(issuer.Raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.SCTList.SCTList) != 1 {
		t.Fatalf("leaf has %d embedded SCTs, want 1", len(l.SCTList.SCTList))
	}
	var sct ct.SignedCertificateTimestamp
	if rest, err := cttls.Unmarshal(l.SCTList.SCTList[0].Val, &sct); err != nil || len(rest) != 0 {
		t.Fatalf("SCT does not parse: %v", err)
	}
	if err := ctutil.VerifySCT(ctKey, []*ctx509.Certificate{l, i}, &sct, true); err != nil {
		t.Fatalf("embedded SCT does not verify: %v", err)
	}
	der, _ := x509.MarshalPKIXPublicKey(ctKey)
	if sct.LogID.KeyID != sha256.Sum256(der) {
		t.Fatal("SCT log ID is not SHA-256 of the CT key")
	}
	ts := time.UnixMilli(int64(sct.Timestamp))
	if ts.Before(leaf.NotBefore) || ts.After(leaf.NotAfter) {
		t.Fatalf("SCT time %s outside the certificate validity", ts)
	}
}

func extValue(c *x509.Certificate, oid asn1.ObjectIdentifier) (pkix.Extension, bool) {
	for _, e := range c.Extensions {
		if e.Id.Equal(oid) {
			return e, true
		}
	}
	return pkix.Extension{}, false
}

// derString decodes a .1.8+ extension value (DER UTF8String).
func derString(t *testing.T, b []byte) string {
	t.Helper()
	var s string
	rest, err := asn1.UnmarshalWithParams(b, &s, "utf8")
	if err != nil || len(rest) != 0 {
		t.Fatalf("extension value %x is not a DER UTF8String: %v", b, err)
	}
	return s
}

// TestV1SigningCertCosignFlow replays cosign 2.x's legacy request.
func TestV1SigningCertCosignFlow(t *testing.T) {
	f := newFixture(t)
	claims := f.iss.gitlab.gitlabClaims()
	tok := f.iss.gitlab.mint(claims)
	k := newP256(t)
	status, hdr, body := f.post(t, "/api/v1/signingCert", tok, v1Body(pubPEM(t, k.Public()), proveP256(t, k, claims["sub"].(string))))
	if status != http.StatusCreated {
		t.Fatalf("status %d: %s", status, body)
	}
	if ct := hdr.Get("Content-Type"); ct != "application/pem-certificate-chain" {
		t.Errorf("Content-Type %q", ct)
	}
	if hdr.Get("SCT") != "" {
		t.Error("SCT header set although the SCT is embedded (cosign would then verify it as detached)")
	}
	chain := parsePEMChain(t, body)
	verifyLeaf(t, f.ca, chain)
	leaf := chain[0]
	if !samePub(leaf.PublicKey, k.Public()) {
		t.Error("leaf certifies another key")
	}
	wantSAN := f.iss.gitlab.URL + "/grp/app//.gitlab-ci.yml@refs/heads/main"
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != wantSAN {
		t.Errorf("SAN %v, want %s", leaf.URIs, wantSAN)
	}
	// cosign v2 splits the body: first PEM block is the leaf, the rest the chain.
	blk, rest := pem.Decode(body)
	if blk == nil || !bytes.Equal(blk.Bytes, leaf.Raw) || len(parsePEMChain(t, rest)) != 2 {
		t.Error("body is not leaf PEM followed by the chain")
	}
}

// TestLeafProfile checks the certificate profile of sigstore-server.md A5.
func TestLeafProfile(t *testing.T) {
	f := newFixture(t)
	claims := f.iss.gitlab.gitlabClaims()
	k := newP256(t)
	status, _, body := f.post(t, "/api/v1/signingCert", f.iss.gitlab.mint(claims), v1Body(pubPEM(t, k.Public()), proveP256(t, k, claims["sub"].(string))))
	if status != http.StatusCreated {
		t.Fatalf("status %d: %s", status, body)
	}
	chain := parsePEMChain(t, body)
	leaf, inter, root := chain[0], chain[1], chain[2]
	if got := leaf.NotAfter.Sub(leaf.NotBefore); got != 10*time.Minute {
		t.Errorf("validity %s, want 10m", got)
	}
	if d := time.Since(leaf.NotBefore); d < -time.Second || d > time.Minute {
		t.Errorf("NotBefore %s is not now (no backdating)", leaf.NotBefore)
	}
	if len(leaf.RawSubject) != 2 { // empty SEQUENCE
		t.Errorf("subject %q is not empty", leaf.Subject)
	}
	san, ok := extValue(leaf, asn1.ObjectIdentifier{2, 5, 29, 17})
	if !ok || !san.Critical {
		t.Error("SAN missing or not critical")
	}
	ku, ok := extValue(leaf, asn1.ObjectIdentifier{2, 5, 29, 15})
	if !ok || !ku.Critical || leaf.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("key usage %v (critical %v), want digitalSignature only, critical", leaf.KeyUsage, ku.Critical)
	}
	if len(leaf.ExtKeyUsage) != 1 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageCodeSigning || len(leaf.UnknownExtKeyUsage) != 0 {
		t.Errorf("EKU %v, want codeSigning only", leaf.ExtKeyUsage)
	}
	if leaf.IsCA {
		t.Error("leaf is a CA")
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	asn1.Unmarshal(leaf.RawSubjectPublicKeyInfo, &spki)
	ski := sha1.Sum(spki.PublicKey.Bytes)
	if !bytes.Equal(leaf.SubjectKeyId, ski[:]) {
		t.Error("SKI is not SHA-1 of the key bits")
	}
	if !bytes.Equal(leaf.AuthorityKeyId, inter.SubjectKeyId) || len(inter.SubjectKeyId) == 0 {
		t.Error("AKI does not match the intermediate's SKI")
	}
	if leaf.SerialNumber.Sign() <= 0 || leaf.SerialNumber.BitLen() > 160 {
		t.Errorf("serial %s not positive or longer than 160 bits", leaf.SerialNumber)
	}
	// .1.1 raw, .1.8 DER: the issuer both ways.
	e1, _ := extValue(leaf, fulcio.OIDIssuerV1)
	if string(e1.Value) != f.iss.gitlab.URL || e1.Critical {
		t.Errorf(".1.1 = %q, want raw %q", e1.Value, f.iss.gitlab.URL)
	}
	e8, _ := extValue(leaf, fulcio.OIDIssuerV2)
	if derString(t, e8.Value) != f.iss.gitlab.URL {
		t.Errorf(".1.8 = %x", e8.Value)
	}
	// Fulcio's extension order: .1.1, .1.8, .1.9 ... .1.24, then the SCT list last.
	var order []int
	for _, e := range leaf.Extensions {
		if len(e.Id) == 9 && e.Id[6] == 57264 {
			order = append(order, e.Id[8])
		}
	}
	for i := 1; i < len(order); i++ {
		if order[i] <= order[i-1] {
			t.Errorf("extension order %v", order)
		}
	}
	if last := leaf.Extensions[len(leaf.Extensions)-1]; !last.Id.Equal(asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 4, 2}) {
		t.Errorf("last extension %s, want the SCT list", last.Id)
	}
	// CA profile.
	if !root.IsCA || root.Subject.CommonName == "" || len(root.Subject.Organization) == 0 || root.CheckSignatureFrom(root) != nil {
		t.Error("root is not a self-signed CA with CN and O")
	}
	if !inter.IsCA || inter.MaxPathLen != 0 || !inter.MaxPathLenZero || len(inter.ExtKeyUsage) != 1 || inter.ExtKeyUsage[0] != x509.ExtKeyUsageCodeSigning {
		t.Error("intermediate is not CA:TRUE pathlen:0 EKU codeSigning")
	}
	if root.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign || inter.KeyUsage != root.KeyUsage {
		t.Error("CA key usage is not certSign+crlSign")
	}
	for _, c := range []*x509.Certificate{root, inter} {
		if k, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() || c.SignatureAlgorithm != x509.ECDSAWithSHA256 {
			t.Errorf("%s: key %T, signature %s; the default is ECDSA P-256 with SHA-256", c.Subject.CommonName, c.PublicKey, c.SignatureAlgorithm)
		}
	}
}

func samePub(a, b crypto.PublicKey) bool {
	x, _ := x509.MarshalPKIXPublicKey(a)
	y, _ := x509.MarshalPKIXPublicKey(b)
	return bytes.Equal(x, y)
}

// TestV2SigningCert covers the v2 API: JSON in camelCase (token in the
// header, as sigstore-go sends it) and snake_case (token in the body).
func TestV2SigningCert(t *testing.T) {
	f := newFixture(t)
	claims := f.iss.gitlab.gitlabClaims()
	sub := claims["sub"].(string)
	k := newP256(t)
	proof := proveP256(t, k, sub)
	tok := f.iss.gitlab.mint(claims)
	snake, _ := json.Marshal(map[string]any{
		"credentials": map[string]any{"oidc_identity_token": tok},
		"public_key_request": map[string]any{
			"public_key":          map[string]any{"algorithm": 2, "content": string(pubPEM(t, k.Public()))},
			"proof_of_possession": proof,
		},
		"unknown_field": true,
	})
	// sigstore-go sends "RSA", which is no enum name: the algorithm is ignored.
	oddAlg, _ := json.Marshal(map[string]any{"publicKeyRequest": map[string]any{
		"publicKey": map[string]any{"algorithm": "RSA", "content": string(pubPEM(t, k.Public()))}, "proofOfPossession": proof,
	}})
	for _, tc := range []struct {
		name, token string
		body        []byte
	}{
		{"camelCase, header token", tok, v2Body(pubPEM(t, k.Public()), proof)},
		{"snake_case, body token", "", snake},
		{"algorithm not matching the key", tok, oddAlg},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, hdr, body := f.post(t, "/api/v2/signingCert", tc.token, tc.body)
			if status != http.StatusOK {
				t.Fatalf("status %d: %s", status, body)
			}
			if !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
				t.Errorf("Content-Type %q", hdr.Get("Content-Type"))
			}
			var resp struct {
				SignedCertificateEmbeddedSct struct {
					Chain struct{ Certificates []string } `json:"chain"`
				} `json:"signedCertificateEmbeddedSct"`
			}
			if err := json.Unmarshal(body, &resp); err != nil {
				t.Fatal(err)
			}
			certs := resp.SignedCertificateEmbeddedSct.Chain.Certificates
			var chain []*x509.Certificate
			for _, p := range certs {
				if p != strings.TrimSpace(p) {
					t.Error("PEM not trimmed")
				}
				chain = append(chain, parsePEMChain(t, []byte(p))...)
			}
			verifyLeaf(t, f.ca, chain)
		})
	}
}

// TestCSR covers the CSR flow of both APIs (the CSR self-signature is the
// proof of possession).
func TestCSR(t *testing.T) {
	f := newFixture(t)
	claims := f.iss.gitlab.gitlabClaims()
	tok := f.iss.gitlab.mint(claims)
	for _, tc := range []struct {
		name string
		key  crypto.Signer
	}{
		{"ECDSA P-384", mustKey(ecdsa.GenerateKey(elliptic.P384(), rand.Reader))},
		{"Ed25519", ed25519Key(t)},
		{"RSA 2048", testRSAKeys(t)[1]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "ignored"}}, tc.key)
			if err != nil {
				t.Fatal(err)
			}
			csrPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER})
			b2, _ := json.Marshal(map[string]any{"certificateSigningRequest": csrPEM})
			status, _, body := f.post(t, "/api/v2/signingCert", tok, b2)
			if status != http.StatusOK {
				t.Fatalf("v2 status %d: %s", status, body)
			}
			b1, _ := json.Marshal(map[string]any{"certificateSigningRequest": csrPEM})
			status, _, body = f.post(t, "/api/v1/signingCert", tok, b1)
			if status != http.StatusCreated {
				t.Fatalf("v1 status %d: %s", status, body)
			}
			chain := parsePEMChain(t, body)
			verifyLeaf(t, f.ca, chain)
			if !samePub(chain[0].PublicKey, tc.key.Public()) {
				t.Error("leaf certifies another key")
			}
			if chain[0].Subject.CommonName != "" {
				t.Error("CSR subject copied into the certificate")
			}
		})
	}
}

func mustKey(k crypto.Signer, err error) crypto.Signer {
	if err != nil {
		panic(err)
	}
	return k
}

func ed25519Key(t *testing.T) crypto.Signer {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestKeyTypes: every key type Fulcio accepts, with its default proof
// scheme; weak or unsupported keys are refused.
func TestKeyTypes(t *testing.T) {
	f := newFixture(t)
	claims := f.iss.email.fill(map[string]any{"sub": "user-1", "email": "dev@example.com", "email_verified": true})
	tok := f.iss.email.mint(claims)
	const challenge = "dev@example.com"
	ecSign := func(k *ecdsa.PrivateKey, h crypto.Hash) []byte {
		hh := h.New()
		hh.Write([]byte(challenge))
		sig, _ := ecdsa.SignASN1(rand.Reader, k, hh.Sum(nil))
		return sig
	}
	p384 := mustKey(ecdsa.GenerateKey(elliptic.P384(), rand.Reader)).(*ecdsa.PrivateKey)
	p521 := mustKey(ecdsa.GenerateKey(elliptic.P521(), rand.Reader)).(*ecdsa.PrivateKey)
	rsaKey := testRSAKeys(t)[1]
	edKey := ed25519Key(t).(ed25519.PrivateKey)
	d := sha256.Sum256([]byte(challenge))
	pkcs1, _ := rsa.SignPKCS1v15(rand.Reader, rsaKey, crypto.SHA256, d[:])
	pss, _ := rsa.SignPSS(rand.Reader, rsaKey, crypto.SHA256, d[:], nil)
	p224 := mustKey(ecdsa.GenerateKey(elliptic.P224(), rand.Reader)).(*ecdsa.PrivateKey)
	weakRSA := mustKey(rsa.GenerateKey(rand.Reader, 1024)).(*rsa.PrivateKey)
	weakD := sha256.Sum256([]byte(challenge))
	weakSig, _ := rsa.SignPKCS1v15(rand.Reader, weakRSA, crypto.SHA256, weakD[:])
	e3 := rsa.PublicKey{N: rsaKey.N, E: 3}
	p384WrongHash, _ := ecdsa.SignASN1(rand.Reader, p384, sha256Sum(challenge))

	for _, tc := range []struct {
		name   string
		pub    crypto.PublicKey
		proof  []byte
		status int
		msg    string
	}{
		{"ECDSA P-384 SHA-384", p384.Public(), ecSign(p384, crypto.SHA384), 201, ""},
		{"ECDSA P-521 SHA-512", p521.Public(), ecSign(p521, crypto.SHA512), 201, ""},
		{"RSA 2048 PKCS#1 v1.5", rsaKey.Public(), pkcs1, 201, ""},
		{"RSA 2048 PSS", rsaKey.Public(), pss, 201, ""},
		{"Ed25519", edKey.Public(), ed25519.Sign(edKey, []byte(challenge)), 201, ""},
		{"ECDSA P-224 rejected", p224.Public(), ecSign(p224, crypto.SHA256), 400, "insecure"},
		{"RSA 1024 rejected", weakRSA.Public(), weakSig, 400, "RSA modulus of 1024 bits"},
		{"RSA e=3 rejected", &e3, pkcs1, 400, "exponent 3"},
		{"P-384 signed with SHA-256 rejected", p384.Public(), p384WrongHash, 400, "could not be verified"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, _, body := f.post(t, "/api/v1/signingCert", tok, v1Body(pubPEM(t, tc.pub), tc.proof))
			if status != tc.status {
				t.Fatalf("status %d, want %d: %s", status, tc.status, body)
			}
			if tc.status != 201 {
				checkError(t, body, 3, tc.msg)
				return
			}
			chain := parsePEMChain(t, body)
			verifyLeaf(t, f.ca, chain)
			if len(chain[0].EmailAddresses) != 1 || chain[0].EmailAddresses[0] != challenge {
				t.Errorf("email SAN %v", chain[0].EmailAddresses)
			}
		})
	}
}

func sha256Sum(s string) []byte {
	d := sha256.Sum256([]byte(s))
	return d[:]
}

// checkError checks a grpc-gateway error body.
func checkError(t *testing.T, body []byte, code int, msg string) {
	t.Helper()
	var e struct {
		Code    *int   `json:"code"`
		Message string `json:"message"`
		Details []any  `json:"details"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body %q is not JSON: %v", body, err)
	}
	if e.Code == nil || *e.Code != code || e.Details == nil {
		t.Errorf("error body %s: want code %d and details []", body, code)
	}
	if !strings.Contains(e.Message, msg) {
		t.Errorf("error message %q does not contain %q", e.Message, msg)
	}
}

// TestGitLabTokenWithEmail: a CI token that also carries a verified email
// accepts a proof over sub (Fulcio's challenge) or over the email (what
// cosign signs when the token has one); the identity stays the CI URI.
func TestGitLabTokenWithEmail(t *testing.T) {
	f := newFixture(t)
	claims := f.iss.gitlab.gitlabClaims()
	claims["email"], claims["email_verified"] = "alice@example.com", true
	tok := f.iss.gitlab.mint(claims)
	for _, challenge := range []string{claims["sub"].(string), "alice@example.com"} {
		k := newP256(t)
		status, _, body := f.post(t, "/api/v1/signingCert", tok, v1Body(pubPEM(t, k.Public()), proveP256(t, k, challenge)))
		if status != http.StatusCreated {
			t.Fatalf("proof over %q: status %d: %s", challenge, status, body)
		}
		leaf := parsePEMChain(t, body)[0]
		if len(leaf.URIs) != 1 || len(leaf.EmailAddresses) != 0 {
			t.Errorf("SAN uri %v email %v", leaf.URIs, leaf.EmailAddresses)
		}
	}
	k := newP256(t)
	if status, _, _ := f.post(t, "/api/v1/signingCert", tok, v1Body(pubPEM(t, k.Public()), proveP256(t, k, "bob@example.com"))); status != http.StatusBadRequest {
		t.Errorf("proof over an unrelated email: status %d", status)
	}
}
