package tlog

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/hallmark-dev/hallmark/pkg/payload"
)

// Bounds on one dsse entry: each (signature, verifier) pair may cost a
// signature verification.
const (
	maxDSSESignatures = 16
	maxDSSEVerifiers  = 16
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

type hashValue struct {
	Algorithm string `json:"algorithm"`
	Value     string `json:"value"`
}

type dsseSignature struct {
	Signature string `json:"signature"`
	Verifier  string `json:"verifier"`
}

// The canonical dsse body, as Rekor stores it: the envelope itself is not
// kept, only its hash, the payload hash and each signature with the
// canonical PEM of the verifier that verified it, sorted by signature.
type dsseBody struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Spec       struct {
		EnvelopeHash hashValue       `json:"envelopeHash"`
		PayloadHash  hashValue       `json:"payloadHash"`
		Signatures   []dsseSignature `json:"signatures"`
	} `json:"spec"`
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
	if len(pc.Verifiers) == 0 {
		return nil, invalidf("dsse: spec.proposedContent.verifiers is missing (base64 of PEM certificates or public keys)")
	}
	if len(pc.Verifiers) > maxDSSEVerifiers {
		return nil, fmt.Errorf("%w: dsse: %d verifiers; at most %d are accepted", ErrTooLarge, len(pc.Verifiers), maxDSSEVerifiers)
	}
	var env dsseEnvelope
	if err := json.Unmarshal([]byte(*pc.Envelope), &env); err != nil {
		return nil, invalidf("dsse: spec.proposedContent.envelope is not a DSSE envelope: %v", err)
	}
	if len(env.Signatures) == 0 {
		return nil, invalidf("dsse: the envelope has no signatures")
	}
	if len(env.Signatures) > maxDSSESignatures {
		return nil, fmt.Errorf("%w: dsse: %d envelope signatures; at most %d are accepted", ErrTooLarge, len(env.Signatures), maxDSSESignatures)
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
	pae := payload.PAE(env.PayloadType, body)

	// As Rekor: verifiers are tried in order until every signature is
	// verified; each verifier tried must verify at least one signature.
	remaining := make(map[string]bool, len(env.Signatures))
	for _, es := range env.Signatures {
		remaining[es.Sig] = true
	}
	bySig := make(map[string]*verifier, len(env.Signatures))
	for vi, vb := range pc.Verifiers {
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
			if verifyMessage(v.key, pae, sigs[i]) {
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

	var b dsseBody
	b.APIVersion, b.Kind = APIVersion, KindDSSE
	eh := sha256.Sum256([]byte(*pc.Envelope))
	ph := sha256.Sum256(body)
	b.Spec.EnvelopeHash = hashValue{"sha256", hex.EncodeToString(eh[:])}
	b.Spec.PayloadHash = hashValue{"sha256", hex.EncodeToString(ph[:])}
	for sig, v := range bySig {
		b.Spec.Signatures = append(b.Spec.Signatures, dsseSignature{Signature: sig, Verifier: base64.StdEncoding.EncodeToString(v.canonical)})
	}
	sort.Slice(b.Spec.Signatures, func(i, j int) bool { return b.Spec.Signatures[i].Signature < b.Spec.Signatures[j].Signature })
	return canonicalJSON(b)
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
