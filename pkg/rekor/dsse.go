package rekor

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/hallmark-dev/hallmark/pkg/payload"
)

// Bounds on one proposed dsse entry. Rekor verifies every envelope
// signature with each verifier in turn until all are verified, bounded
// only by the request body (rekor-tiles: 4 MiB by default); a sigstore
// bundle carries exactly one signature. Here the signatures and verifiers
// are counted (at most 8 x 8 attempts), the message is hashed once for all
// ECDSA and RSA attempts, and what pure Ed25519 hashes again on every
// attempt is bounded.
const (
	MaxDSSESignatures = 8
	MaxDSSEVerifiers  = 8
	// MaxDSSEEnvelope bounds the envelope (rekor-tiles' default request
	// size).
	MaxDSSEEnvelope = 4 << 20
	// maxEd25519Bytes bounds the bytes Ed25519 attempts hash, in total.
	maxEd25519Bytes = 16 << 20
)

// dsseSpec is the proposed dsse v0.0.1 spec. The server-computed fields
// must be absent (or null, as Rekor's generated client sends "signatures").
type dsseSpec struct {
	ProposedContent *struct {
		Envelope  *string   `json:"envelope"`
		Verifiers []*string `json:"verifiers"`
	} `json:"proposedContent"`
	Signatures   json.RawMessage `json:"signatures"`
	EnvelopeHash json.RawMessage `json:"envelopeHash"`
	PayloadHash  json.RawMessage `json:"payloadHash"`
}

// dsseEnvelope is a DSSE envelope as go-securesystemslib reads it.
type dsseEnvelope struct {
	PayloadType string `json:"payloadType"`
	Payload     string `json:"payload"`
	Signatures  []struct {
		KeyID string `json:"keyid"`
		Sig   string `json:"sig"`
	} `json:"signatures"`
}

// DSSE is the spec of a dsse v0.0.1 entry as the log stores it: the
// envelope itself is not kept, only its hash, the payload hash and each
// signature with the canonical PEM of the verifier that verified it,
// sorted by signature.
type DSSE struct {
	EnvelopeHash Hash            `json:"envelopeHash"`
	PayloadHash  Hash            `json:"payloadHash"`
	Signatures   []DSSESignature `json:"signatures"`
}

// DSSESignature is one logged DSSE signature.
type DSSESignature struct {
	Signature string `json:"signature"` // base64, as in the envelope
	Verifier  []byte `json:"verifier"`  // PEM key or certificate (base64 in JSON)
}

// dsseBody is the canonical dsse entry.
type dsseBody struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Spec       DSSE   `json:"spec"`
}

// NewDSSE is the proposed dsse v0.0.1 entry for a signed envelope,
// verified by the keys or certificates in verifierPEMs, in the field order
// cosign sends.
func NewDSSE(envelope []byte, verifierPEMs ...[]byte) ([]byte, error) {
	var e struct {
		APIVersion string `json:"apiVersion"`
		Spec       struct {
			ProposedContent struct {
				Envelope  string   `json:"envelope"`
				Verifiers [][]byte `json:"verifiers"`
			} `json:"proposedContent"`
		} `json:"spec"`
		Kind string `json:"kind"`
	}
	e.APIVersion, e.Kind = APIVersion, KindDSSE
	e.Spec.ProposedContent.Envelope = string(envelope)
	e.Spec.ProposedContent.Verifiers = verifierPEMs
	return json.Marshal(e)
}

func canonicalDSSE(raw json.RawMessage) ([]byte, error) {
	var s dsseSpec
	if err := strictUnmarshal(raw, &s); err != nil {
		return nil, invalidf("dsse spec: %v", err)
	}
	if !isNull(s.Signatures) || !isNull(s.EnvelopeHash) || !isNull(s.PayloadHash) {
		return nil, invalidf("dsse: signatures, envelopeHash and payloadHash are computed by the log; send only spec.proposedContent")
	}
	pc := s.ProposedContent
	if pc == nil || pc.Envelope == nil || *pc.Envelope == "" {
		return nil, invalidf("dsse: spec.proposedContent.envelope is missing (the DSSE envelope JSON, as a string)")
	}
	if len(*pc.Envelope) > MaxDSSEEnvelope {
		return nil, fmt.Errorf("%w: dsse: the envelope is %d bytes; at most %d are accepted", ErrTooLarge, len(*pc.Envelope), MaxDSSEEnvelope)
	}
	if len(pc.Verifiers) == 0 {
		return nil, invalidf("dsse: spec.proposedContent.verifiers is missing (base64 of PEM certificates or public keys)")
	}
	if len(pc.Verifiers) > MaxDSSEVerifiers {
		return nil, fmt.Errorf("%w: dsse: %d verifiers; at most %d are accepted", ErrTooLarge, len(pc.Verifiers), MaxDSSEVerifiers)
	}
	var env dsseEnvelope
	if err := json.Unmarshal([]byte(*pc.Envelope), &env); err != nil {
		return nil, invalidf("dsse: spec.proposedContent.envelope is not a DSSE envelope: %v", err)
	}
	if len(env.Signatures) == 0 {
		return nil, invalidf("dsse: the envelope has no signatures")
	}
	if len(env.Signatures) > MaxDSSESignatures {
		return nil, fmt.Errorf("%w: dsse: %d envelope signatures; at most %d are accepted", ErrTooLarge, len(env.Signatures), MaxDSSESignatures)
	}
	body, err := dsseB64("dsse: envelope payload", env.Payload)
	if err != nil {
		return nil, err
	}
	sigs := make([][]byte, len(env.Signatures))
	for i, es := range env.Signatures {
		if sigs[i], err = dsseB64(fmt.Sprintf("dsse: envelope signature %d", i+1), es.Sig); err != nil {
			return nil, err
		}
	}
	bySig, err := matchVerifiers(pc.Verifiers, env, sigs, newMessage(payload.PAE(env.PayloadType, body)))
	if err != nil {
		return nil, err
	}

	b := dsseBody{APIVersion: APIVersion, Kind: KindDSSE}
	eh := sha256.Sum256([]byte(*pc.Envelope))
	ph := sha256.Sum256(body)
	b.Spec.EnvelopeHash = Hash{"sha256", hex.EncodeToString(eh[:])}
	b.Spec.PayloadHash = Hash{"sha256", hex.EncodeToString(ph[:])}
	for sig, v := range bySig {
		b.Spec.Signatures = append(b.Spec.Signatures, DSSESignature{Signature: sig, Verifier: v.canonical})
	}
	sort.Slice(b.Spec.Signatures, func(i, j int) bool { return b.Spec.Signatures[i].Signature < b.Spec.Signatures[j].Signature })
	return canonicalJSON(b)
}

// matchVerifiers finds, as Rekor does, the verifier of every envelope
// signature (decoded in sigs) over msg: verifiers are tried in order until
// every signature is verified, and each verifier tried must verify at
// least one signature.
func matchVerifiers(verifiers []*string, env dsseEnvelope, sigs [][]byte, msg *message) (map[string]*verifier, error) {
	remaining := make(map[string]bool, len(env.Signatures))
	for _, es := range env.Signatures {
		remaining[es.Sig] = true
	}
	bySig := make(map[string]*verifier, len(env.Signatures))
	for vi, vb := range verifiers {
		if len(remaining) == 0 {
			break
		}
		field := fmt.Sprintf("dsse: spec.proposedContent.verifiers[%d]", vi)
		if vb == nil || *vb == "" {
			return nil, invalidf("%s is empty", field)
		}
		pemBytes, err := decodeB64(field, *vb)
		if err != nil {
			return nil, err
		}
		v, err := parseVerifier(pemBytes)
		if err != nil {
			return nil, fieldErr(field, err)
		}
		accepted := 0
		for i, es := range env.Signatures {
			ok, err := msg.verify(v.key, sigs[i])
			if err != nil {
				return nil, err
			}
			if ok {
				bySig[es.Sig] = v
				delete(remaining, es.Sig)
				accepted++
			}
		}
		if accepted == 0 {
			return nil, invalidf("%s (%s) verifies none of the envelope signatures over the DSSE PAE; send the key or certificate that signed the envelope", field, describeKey(v.key))
		}
	}
	if len(remaining) > 0 {
		return nil, invalidf("dsse: %d envelope signature(s) verify with none of the verifiers; every signature needs its verifier", len(remaining))
	}
	return bySig, nil
}

// message is a DSSE PAE, hashed once for every ECDSA and RSA attempt,
// and what Ed25519 attempts have hashed of it so far.
type message struct {
	pae     []byte
	digest  [32]byte
	ed25519 int
}

func newMessage(pae []byte) *message { return &message{pae: pae, digest: sha256.Sum256(pae)} }

// verify checks sig over the message as Rekor's dsse type does: ECDSA and
// RSA PKCS#1 v1.5 over SHA-256, pure Ed25519. An Ed25519 attempt that would
// hash more than maxEd25519Bytes in total is an ErrTooLarge error.
func (m *message) verify(k crypto.PublicKey, sig []byte) (bool, error) {
	switch k := k.(type) {
	case *ecdsa.PublicKey:
		return ecdsa.VerifyASN1(k, m.digest[:], sig), nil
	case *rsa.PublicKey:
		return rsa.VerifyPKCS1v15(k, crypto.SHA256, m.digest[:], sig) == nil, nil
	case ed25519.PublicKey:
		if m.ed25519+len(m.pae) > maxEd25519Bytes {
			return false, fmt.Errorf("%w: dsse: Ed25519 verifiers must hash the whole %d-byte envelope payload for every signature they try; at most %d bytes are hashed for one entry (send fewer signatures or verifiers, or a smaller payload)",
				ErrTooLarge, len(m.pae), maxEd25519Bytes)
		}
		m.ed25519 += len(m.pae)
		return ed25519.Verify(k, m.pae, sig), nil
	}
	return false, nil
}

// dsseB64 decodes DSSE base64 as go-securesystemslib does: standard
// encoding, else URL-safe encoding.
func dsseB64(field, s string) ([]byte, error) {
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	b, err := base64.URLEncoding.DecodeString(s)
	if err != nil {
		return nil, invalidf("%s is not base64", field)
	}
	return b, nil
}
