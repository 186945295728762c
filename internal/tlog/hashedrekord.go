package tlog

import (
	"crypto"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
)

// hashedRekordSpec is the proposed hashedrekord v0.0.1 spec. Pointers tell
// "missing" from "empty".
type hashedRekordSpec struct {
	Data *struct {
		Hash *struct {
			Algorithm *string `json:"algorithm"`
			Value     *string `json:"value"`
		} `json:"hash"`
	} `json:"data"`
	Signature *struct {
		Content   *string `json:"content"`
		PublicKey *struct {
			Content *string `json:"content"`
		} `json:"publicKey"`
	} `json:"signature"`
}

// The canonical hashedrekord body, as Rekor stores it: only the digest,
// the signature bytes and the canonical key/certificate PEM.
type hashedRekordBody struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Spec       struct {
		Data struct {
			Hash struct {
				Algorithm string `json:"algorithm"`
				Value     string `json:"value"`
			} `json:"hash"`
		} `json:"data"`
		Signature struct {
			Content   string `json:"content"`
			PublicKey struct {
				Content string `json:"content"`
			} `json:"publicKey"`
		} `json:"signature"`
	} `json:"spec"`
}

func canonicalHashedRekord(raw json.RawMessage) ([]byte, error) {
	var s hashedRekordSpec
	if err := strictUnmarshal(raw, &s); err != nil {
		return nil, invalidf("hashedrekord spec: %v", err)
	}
	if s.Signature == nil {
		return nil, invalidf("hashedrekord: spec.signature is missing")
	}
	if s.Signature.Content == nil || *s.Signature.Content == "" {
		return nil, invalidf("hashedrekord: spec.signature.content is missing (base64 of the signature bytes)")
	}
	if s.Signature.PublicKey == nil || s.Signature.PublicKey.Content == nil || *s.Signature.PublicKey.Content == "" {
		return nil, invalidf("hashedrekord: spec.signature.publicKey.content is missing (base64 of a PEM certificate or public key)")
	}
	if s.Data == nil || s.Data.Hash == nil {
		return nil, invalidf("hashedrekord: spec.data.hash is missing")
	}
	if s.Data.Hash.Algorithm == nil || s.Data.Hash.Value == nil {
		return nil, invalidf("hashedrekord: spec.data.hash needs both algorithm and value")
	}
	sig, err := decodeB64("hashedrekord: spec.signature.content", *s.Signature.Content)
	if err != nil {
		return nil, err
	}
	keyPEM, err := decodeB64("hashedrekord: spec.signature.publicKey.content", *s.Signature.PublicKey.Content)
	if err != nil {
		return nil, err
	}
	if len(sig) == 0 || len(keyPEM) == 0 {
		return nil, invalidf("hashedrekord: signature and public key must not be empty")
	}
	var h crypto.Hash
	switch alg := *s.Data.Hash.Algorithm; alg {
	case "sha256":
		h = crypto.SHA256
	case "sha384":
		h = crypto.SHA384
	case "sha512":
		h = crypto.SHA512
	default:
		return nil, unsupportedf("hashedrekord: spec.data.hash.algorithm %q; use sha256, sha384 or sha512", truncate(alg, 32))
	}
	value := *s.Data.Hash.Value
	if len(value) != 2*h.Size() || !isLowerHex(value) {
		return nil, invalidf("hashedrekord: spec.data.hash.value must be %d lowercase hex characters for %s", 2*h.Size(), hashName(h))
	}
	digest, _ := hex.DecodeString(value)
	v, err := parseVerifier(keyPEM)
	if err != nil {
		return nil, fieldErr("hashedrekord: spec.signature.publicKey.content", err)
	}
	if err := allowedDigest(v.key, h); err != nil {
		return nil, fieldErr("hashedrekord", err)
	}
	if !verifyDigest(v.key, h, digest, sig) {
		return nil, invalidf("hashedrekord: the signature does not verify with the given %s key over %s:%s; sign the artifact digest with the key or certificate you send",
			describeKey(v.key), hashName(h), shortHex(digest))
	}
	var b hashedRekordBody
	b.APIVersion, b.Kind = APIVersion, KindHashedRekord
	b.Spec.Data.Hash.Algorithm = hashName(h)
	b.Spec.Data.Hash.Value = value
	b.Spec.Signature.Content = base64.StdEncoding.EncodeToString(sig)
	b.Spec.Signature.PublicKey.Content = base64.StdEncoding.EncodeToString(v.canonical)
	return canonicalJSON(b)
}
