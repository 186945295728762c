package index

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/pkg/fulcio"
	"github.com/hallmark-dev/hallmark/pkg/payload"
	"github.com/hallmark-dev/hallmark/pkg/verify"
)

// sigstoreBundle holds the fields of a sigstore bundle (v0.3 protojson)
// the indexer reads.
type sigstoreBundle struct {
	MediaType            string `json:"mediaType"`
	VerificationMaterial struct {
		PublicKey *struct {
			Hint string `json:"hint"`
		} `json:"publicKey"`
		Certificate *struct {
			RawBytes string `json:"rawBytes"`
		} `json:"certificate"`
		X509CertificateChain *struct {
			Certificates []struct {
				RawBytes string `json:"rawBytes"`
			} `json:"certificates"`
		} `json:"x509CertificateChain"`
		TlogEntries []struct {
			LogIndex json.RawMessage `json:"logIndex"`
		} `json:"tlogEntries"`
	} `json:"verificationMaterial"`
	DSSEEnvelope *struct {
		Payload     string `json:"payload"`
		PayloadType string `json:"payloadType"`
		Signatures  []struct {
			Sig string `json:"sig"`
		} `json:"signatures"`
	} `json:"dsseEnvelope"`
}

type statement struct {
	Type    string `json:"_type"`
	Subject []struct {
		Digest      map[string]string `json:"digest"`
		Annotations map[string]any    `json:"annotations"`
	} `json:"subject"`
	PredicateType string `json:"predicateType"`
}

// bundle fills s from a sigstore bundle layer (cosign v3's format).
func (ix *Indexer) bundle(s *meta.Signature, data []byte) {
	s.Key = dedupeKey(s.Layer.String())
	setStatus := func(status, detail string) { s.Status, s.StatusDetail = status, detail }
	var b sigstoreBundle
	if err := json.Unmarshal(data, &b); err != nil {
		setStatus(meta.StatusInvalid, "bundle is not JSON: "+err.Error())
		return
	}
	vm := b.VerificationMaterial
	if len(vm.TlogEntries) > 0 {
		raw := strings.Trim(string(vm.TlogEntries[0].LogIndex), `"`)
		if v, err := strconv.ParseInt(raw, 10, 64); err == nil {
			s.LogIndex = &v
		} else if raw == "" {
			zero := int64(0) // proto3 JSON omits a zero index
			s.LogIndex = &zero
		}
	}
	env := b.DSSEEnvelope
	if env == nil {
		setStatus(meta.StatusUnverified, "bundle carries a message signature, which the indexer does not check yet")
		return
	}
	s.PayloadType = env.PayloadType
	body, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		setStatus(meta.StatusInvalid, "DSSE payload is not base64")
		return
	}
	var st statement
	if err := json.Unmarshal(body, &st); err != nil || len(st.Subject) == 0 {
		setStatus(meta.StatusInvalid, "DSSE payload is not an in-toto statement with a subject")
		return
	}
	if got := st.Subject[0].Digest[string(s.Subject.Algorithm())]; got != s.Subject.Encoded() {
		setStatus(meta.StatusInvalid, fmt.Sprintf("statement subject digest %q does not match %s", got, s.Subject))
		return
	}
	s.Annotations = payload.Annotations(st.Subject[0].Annotations)
	if len(env.Signatures) == 0 {
		setStatus(meta.StatusInvalid, "DSSE envelope has no signature")
		return
	}
	sig, err := base64.StdEncoding.DecodeString(env.Signatures[0].Sig)
	if err != nil {
		setStatus(meta.StatusInvalid, "DSSE signature is not base64")
		return
	}
	pae := payload.PAE(env.PayloadType, body)
	var certDER string
	switch {
	case vm.Certificate != nil:
		certDER = vm.Certificate.RawBytes
	case vm.X509CertificateChain != nil && len(vm.X509CertificateChain.Certificates) > 0:
		certDER = vm.X509CertificateChain.Certificates[0].RawBytes
	}
	if certDER != "" {
		der, err := base64.StdEncoding.DecodeString(certDER)
		if err != nil {
			setStatus(meta.StatusInvalid, "certificate is not base64")
			return
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			setStatus(meta.StatusInvalid, "certificate: "+err.Error())
			return
		}
		s.Signer, s.CertIssuer = fulcio.Identity(cert)
		s.CertExtensions = fulcio.Values(cert)
		if verify.VerifySignature(cert.PublicKey, pae, sig) != nil {
			setStatus(meta.StatusInvalid, "DSSE signature does not verify with the certificate's key")
			return
		}
		t := ix.keyless.Load()
		if t == nil {
			setStatus(meta.StatusUnverified, "signature matches its certificate; no trusted certificate authority is configured")
			return
		}
		_, err = verify.VerifySigstoreBundle(data, verify.BundleCheck{ImageDigest: s.Subject.String()}, t.options(), s.Layer.String())
		setStatus(keylessStatus(err, s.LogIndex))
		return
	}
	for _, k := range ix.cfg.Keys {
		if verify.VerifySignature(k.Key, pae, sig) == nil {
			s.Signer = k.Fingerprint
			setStatus(meta.StatusVerified, "verified with trusted key "+k.Fingerprint)
			return
		}
	}
	if vm.PublicKey != nil {
		s.Signer = "SHA256:" + vm.PublicKey.Hint
	}
	setStatus(meta.StatusUnverified, "signed with a key the server does not trust")
}
