package verify

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/hallmark-dev/hallmark/pkg/root"
)

// Transparency-log errors. Match them with errors.Is; the messages around
// them say what differed.
var (
	// ErrUnknownLog: the entry names a log whose key is not trusted.
	ErrUnknownLog = errors.New("rekor log public key not found for payload")
	// ErrSET: the signed entry timestamp does not verify with the log key.
	ErrSET = errors.New("signed entry timestamp does not verify")
	// ErrInclusionProof: the inclusion proof or its checkpoint is wrong.
	ErrInclusionProof = errors.New("inclusion proof does not verify")
	// ErrEntryMismatch: the logged entry is not the signature being
	// verified (other content, signature or key).
	ErrEntryMismatch = errors.New("logged entry does not match the signature")
	// ErrNoBundle: the signature carries no transparency-log bundle.
	ErrNoBundle = errors.New("signature has no transparency log bundle")
	// ErrCertificateValidity: the certificate was not valid when the
	// signature was logged.
	ErrCertificateValidity = errors.New("certificate not valid at the logged time")
	// ErrOutsideValidFor: a key or certificate authority of the trusted
	// root vouched for something outside its validFor window (a retired
	// or not yet active log key, CT log key or CA).
	ErrOutsideValidFor = errors.New("trusted root key or certificate authority used outside its validFor window")
)

// LogEntry is one transparency-log entry as Rekor v1 returns it and as
// sigstore bundles and cosign's bundle annotation carry it.
type LogEntry struct {
	Body           []byte // the canonical entry (decoded from base64)
	IntegratedTime int64
	LogIndex       int64
	LogID          string // hex SHA-256 of the log key's DER SubjectPublicKeyInfo
	SET            []byte // signed entry timestamp (ECDSA, ASN.1)
	Proof          *InclusionProof
}

// InclusionProof proves that an entry is in a tree whose head the log
// signed in Checkpoint.
type InclusionProof struct {
	LogIndex   int64
	TreeSize   int64
	RootHash   []byte
	Hashes     [][]byte
	Checkpoint string // signed note
}

// canonicalSETPayload is RFC 8785 JSON of the SET fields: keys sorted, and
// base64/hex strings need no escaping, so encoding/json's output is canonical.
type canonicalSETPayload struct {
	Body           string `json:"body"`
	IntegratedTime int64  `json:"integratedTime"`
	LogID          string `json:"logID"`
	LogIndex       int64  `json:"logIndex"`
}

// logKey returns the ECDSA key of the log that e names, once it is known
// to be trusted at the entry's integrated time (sigstore-go: "rekor log
// public key not valid at payload integrated time").
func logKey(e *LogEntry, keys map[string]root.LogKey) (*ecdsa.PublicKey, error) {
	key, ok := keys[strings.ToLower(e.LogID)]
	if !ok {
		return nil, fmt.Errorf("%w: transparency log %q is not in the trusted root (verify with the trusted root of the server that logged it)", ErrUnknownLog, e.LogID)
	}
	if t := time.Unix(e.IntegratedTime, 0); !key.ValidFor.Covers(t) {
		return nil, fmt.Errorf("%w: transparency log key %s is trusted %s; the entry (index %d) was integrated at %s (use a trusted root whose key for that log was valid then)",
			ErrOutsideValidFor, strings.ToLower(e.LogID), key.ValidFor, e.LogIndex, t.UTC().Format(time.RFC3339))
	}
	ek, ok := key.Key.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("transparency log key %T cannot verify a signed entry timestamp (ECDSA required)", key.Key)
	}
	return ek, nil
}

// VerifySET checks the entry's signed entry timestamp with the key of the
// log it names, which must be trusted at the entry's integrated time: an
// ECDSA signature over the canonical JSON of body, integratedTime, logID
// and logIndex. It proves the log promised to include exactly this entry
// at this index and time.
func VerifySET(e *LogEntry, keys map[string]root.LogKey) error {
	key, err := logKey(e, keys)
	if err != nil {
		return err
	}
	if len(e.SET) == 0 {
		return fmt.Errorf("%w: the entry carries no signed entry timestamp", ErrSET)
	}
	canon, err := json.Marshal(canonicalSETPayload{Body: base64.StdEncoding.EncodeToString(e.Body), IntegratedTime: e.IntegratedTime,
		LogID: strings.ToLower(e.LogID), LogIndex: e.LogIndex})
	if err != nil {
		return err
	}
	h := sha256.Sum256(canon)
	if !ecdsa.VerifyASN1(key, h[:], e.SET) {
		return fmt.Errorf("%w with the log key %s: the entry (index %d, time %d) was changed or the timestamp was signed by another log", ErrSET, e.LogID, e.LogIndex, e.IntegratedTime)
	}
	return nil
}

// VerifyInclusion checks the entry's inclusion proof: the RFC 6962 leaf
// hash of the body, through the proof hashes, gives the root hash, and that
// root hash and tree size are the ones of a checkpoint signed by the log's
// key. That key must be trusted at the entry's integrated time (which only
// a SET authenticates; sigstore-go checks the window on the SET alone).
func VerifyInclusion(e *LogEntry, keys map[string]root.LogKey) error {
	p := e.Proof
	if p == nil {
		return fmt.Errorf("%w: the entry carries no inclusion proof", ErrInclusionProof)
	}
	key, err := logKey(e, keys)
	if err != nil {
		return err
	}
	if p.LogIndex < 0 || p.TreeSize <= 0 || p.LogIndex >= p.TreeSize {
		return fmt.Errorf("%w: index %d is not inside a tree of size %d", ErrInclusionProof, p.LogIndex, p.TreeSize)
	}
	leaf := rfc6962.DefaultHasher.HashLeaf(e.Body)
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(p.LogIndex), uint64(p.TreeSize), leaf, p.Hashes, p.RootHash); err != nil {
		return fmt.Errorf("%w: the entry is not at index %d of the tree of size %d with root %x: %v", ErrInclusionProof, p.LogIndex, p.TreeSize, p.RootHash, err)
	}
	if p.Checkpoint == "" {
		return fmt.Errorf("%w: no signed checkpoint for the proof's tree", ErrInclusionProof)
	}
	cp, err := VerifyCheckpoint([]byte(p.Checkpoint), key)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInclusionProof, err)
	}
	if cp.Size != uint64(p.TreeSize) || !bytes.Equal(cp.Root[:], p.RootHash) {
		return fmt.Errorf("%w: the proof is for a tree of size %d with root %x, but the log's signed checkpoint is for size %d with root %x (a proof for another tree)",
			ErrInclusionProof, p.TreeSize, p.RootHash, cp.Size, cp.Root)
	}
	return nil
}

// Checkpoint is a signed log head (Rekor v1's signed note body).
type Checkpoint struct {
	Origin string
	Size   uint64
	Root   [32]byte
}

// VerifyCheckpoint parses a signed note and checks that one of its
// signatures is the log key's: key hint = first four bytes of the SHA-256
// of the key's DER SubjectPublicKeyInfo, ECDSA over SHA-256 of the text.
func VerifyCheckpoint(note []byte, key *ecdsa.PublicKey) (*Checkpoint, error) {
	split := bytes.LastIndex(note, []byte("\n\n"))
	if split < 0 {
		return nil, errors.New("checkpoint: no blank line before the signatures")
	}
	text, sigs := note[:split+1], note[split+2:]
	lines := strings.Split(string(text), "\n")
	if len(lines) < 4 {
		return nil, errors.New("checkpoint: need origin, tree size and root hash lines")
	}
	cp := &Checkpoint{Origin: lines[0]}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil {
		return nil, errors.New("checkpoint: tree size is not a number")
	}
	cp.Size = size
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != 32 {
		return nil, errors.New("checkpoint: root hash is not base64 of 32 bytes")
	}
	copy(cp.Root[:], root)
	der, err := x509.MarshalPKIXPublicKey(key)
	if err != nil {
		return nil, err
	}
	hint := sha256.Sum256(der)
	d := sha256.Sum256(text)
	for _, line := range strings.Split(strings.TrimSuffix(string(sigs), "\n"), "\n") {
		rest, ok := strings.CutPrefix(line, "\u2014 ")
		if !ok {
			continue
		}
		_, b64, ok := strings.Cut(rest, " ")
		if !ok {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(raw) < 5 {
			continue
		}
		if bytes.Equal(raw[:4], hint[:4]) && ecdsa.VerifyASN1(key, d[:], raw[4:]) {
			return cp, nil
		}
	}
	return nil, errors.New("checkpoint: not signed by the log's key")
}

// loggedSignature is what a log entry must bind: the digest of the signed
// content (for DSSE: of the payload), the signature and the certificate or
// public key (DER) that verifies it.
type loggedSignature struct {
	contentSHA256 []byte
	sig           []byte
	keyDER        []byte // certificate DER, or PKIX public key DER
}

// checkEntryBody checks that a canonical hashedrekord or dsse v0.0.1 body
// logs exactly want.
func checkEntryBody(body []byte, want loggedSignature) error {
	var head struct {
		Kind string          `json:"kind"`
		Spec json.RawMessage `json:"spec"`
	}
	if err := json.Unmarshal(body, &head); err != nil {
		return fmt.Errorf("%w: the logged entry is not JSON", ErrEntryMismatch)
	}
	switch head.Kind {
	case "hashedrekord":
		var s struct {
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
		}
		if err := json.Unmarshal(head.Spec, &s); err != nil {
			return fmt.Errorf("%w: the logged hashedrekord entry is malformed", ErrEntryMismatch)
		}
		if s.Data.Hash.Algorithm != "sha256" || s.Data.Hash.Value != hex.EncodeToString(want.contentSHA256) {
			return fmt.Errorf("%w: the logged entry is for other content (hash %s:%s, not sha256:%x)", ErrEntryMismatch, s.Data.Hash.Algorithm, s.Data.Hash.Value, want.contentSHA256)
		}
		if s.Signature.Content != base64.StdEncoding.EncodeToString(want.sig) {
			return fmt.Errorf("%w: the logged entry holds a different signature", ErrEntryMismatch)
		}
		logged, err := base64.StdEncoding.DecodeString(s.Signature.PublicKey.Content)
		if err != nil || !bytes.Equal(firstDER(logged), want.keyDER) {
			return fmt.Errorf("%w: the logged entry was made with a different key or certificate", ErrEntryMismatch)
		}
		return nil
	case "dsse":
		var s struct {
			PayloadHash struct {
				Algorithm string `json:"algorithm"`
				Value     string `json:"value"`
			} `json:"payloadHash"`
			Signatures []struct {
				Signature string `json:"signature"`
				Verifier  string `json:"verifier"`
			} `json:"signatures"`
		}
		if err := json.Unmarshal(head.Spec, &s); err != nil {
			return fmt.Errorf("%w: the logged dsse entry is malformed", ErrEntryMismatch)
		}
		if s.PayloadHash.Algorithm != "sha256" || s.PayloadHash.Value != hex.EncodeToString(want.contentSHA256) {
			return fmt.Errorf("%w: the logged entry is for another DSSE payload (hash %s:%s, not sha256:%x)", ErrEntryMismatch, s.PayloadHash.Algorithm, s.PayloadHash.Value, want.contentSHA256)
		}
		for _, ls := range s.Signatures {
			sig, err := base64.StdEncoding.DecodeString(ls.Signature)
			if err != nil || !bytes.Equal(sig, want.sig) {
				continue
			}
			v, err := base64.StdEncoding.DecodeString(ls.Verifier)
			if err == nil && bytes.Equal(firstDER(v), want.keyDER) {
				return nil
			}
			return fmt.Errorf("%w: the logged entry's signature was verified with a different key or certificate", ErrEntryMismatch)
		}
		return fmt.Errorf("%w: the logged entry holds a different signature", ErrEntryMismatch)
	default:
		return fmt.Errorf("%w: the logged entry is of kind %q (want hashedrekord or dsse)", ErrEntryMismatch, head.Kind)
	}
}

// firstDER returns the DER of the first PEM certificate (its whole DER) or
// public key (PKIX DER) in p.
func firstDER(p []byte) []byte {
	if c, err := ParseCertificatePEM(p); err == nil {
		return c.Raw
	}
	if k, err := ParsePublicKey(p); err == nil {
		der, _ := x509.MarshalPKIXPublicKey(k)
		return der
	}
	return nil
}

// VerifyLoggedSignature checks a log entry the way a signer does before
// attaching it: the entry logs exactly this signature (over content with
// SHA-256 contentSHA256, by the key or certificate with DER keyDER), its
// SET verifies with the log key trusted at its integrated time, and, when
// requireProof, its inclusion proof verifies against a checkpoint signed
// by that key.
func VerifyLoggedSignature(e *LogEntry, keys map[string]root.LogKey, contentSHA256, sig, keyDER []byte, requireProof bool) error {
	if err := checkEntryBody(e.Body, loggedSignature{contentSHA256: contentSHA256, sig: sig, keyDER: keyDER}); err != nil {
		return err
	}
	if err := VerifySET(e, keys); err != nil {
		return err
	}
	if requireProof || e.Proof != nil {
		return VerifyInclusion(e, keys)
	}
	return nil
}
