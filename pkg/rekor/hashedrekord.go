package rekor

import (
	"crypto"
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

// Hash is a digest in an entry: algorithm ("sha256", ...) and lowercase
// hex value.
type Hash struct {
	Algorithm string `json:"algorithm"`
	Value     string `json:"value"`
}

// HashedRekord is the spec of a hashedrekord v0.0.1 entry: the digest of
// the signed artifact, the signature and the PEM key or certificate that
// made it. As the log stores it (canonical), the key is re-encoded; as a
// client proposes it, it is what the client sends.
type HashedRekord struct {
	Data struct {
		Hash Hash `json:"hash"`
	} `json:"data"`
	Signature struct {
		Content   []byte `json:"content"` // the signature bytes (base64 in JSON)
		PublicKey struct {
			Content []byte `json:"content"` // PEM key or certificate (chain)
		} `json:"publicKey"`
	} `json:"signature"`
}

// hashedRekordBody is the canonical hashedrekord entry.
type hashedRekordBody struct {
	APIVersion string       `json:"apiVersion"`
	Kind       string       `json:"kind"`
	Spec       HashedRekord `json:"spec"`
}

// NewHashedRekord is the proposed hashedrekord v0.0.1 entry for sig over
// an artifact whose digest is h, made by the key in verifierPEM (a PEM
// public key or certificate), in the field order cosign sends.
func NewHashedRekord(h Hash, sig, verifierPEM []byte) ([]byte, error) {
	var e struct {
		APIVersion string       `json:"apiVersion"`
		Spec       HashedRekord `json:"spec"`
		Kind       string       `json:"kind"`
	}
	e.APIVersion, e.Kind = APIVersion, KindHashedRekord
	e.Spec.Data.Hash = h
	e.Spec.Signature.Content = sig
	e.Spec.Signature.PublicKey.Content = verifierPEM
	return json.Marshal(e)
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
	b := hashedRekordBody{APIVersion: APIVersion, Kind: KindHashedRekord}
	b.Spec.Data.Hash = Hash{Algorithm: hashName(h), Value: value}
	b.Spec.Signature.Content = sig
	b.Spec.Signature.PublicKey.Content = v.canonical
	return canonicalJSON(b)
}
