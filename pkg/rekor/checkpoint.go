package rekor

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Checkpoint is a log head: origin line, tree size and root hash. Rekor v1
// uses the origin "<hostname> - <treeID>".
type Checkpoint struct {
	Origin string
	Size   uint64
	Root   [32]byte
}

// Text is the note body that is signed.
func (c Checkpoint) Text() string {
	return c.Origin + "\n" + strconv.FormatUint(c.Size, 10) + "\n" + base64.StdEncoding.EncodeToString(c.Root[:]) + "\n"
}

// Sign returns c as a signed note: its text, a blank line and one
// signature line "— <name> base64(keyHint[4] || ECDSA-DER(SHA-256(text)))"
// (KeyHint gives the hint of the signer's key).
func (c Checkpoint) Sign(signer crypto.Signer, keyHint [4]byte, name string) ([]byte, error) {
	text := c.Text()
	d := sha256.Sum256([]byte(text))
	sig, err := signer.Sign(rand.Reader, d[:], crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("sign checkpoint: %w", err)
	}
	var b bytes.Buffer
	b.WriteString(text)
	b.WriteString("\n\u2014 ")
	b.WriteString(name)
	b.WriteByte(' ')
	b.WriteString(base64.StdEncoding.EncodeToString(append(keyHint[:], sig...)))
	b.WriteByte('\n')
	return b.Bytes(), nil
}

// SignedCheckpoint is a parsed signed note.
type SignedCheckpoint struct {
	Checkpoint
	Text       string
	Signatures []NoteSignature
}

// NoteSignature is one signature line of a signed note.
type NoteSignature struct {
	Name    string
	KeyHint [4]byte
	Sig     []byte
}

// ParseCheckpoint parses a Rekor v1 signed checkpoint without verifying it.
func ParseCheckpoint(note []byte) (*SignedCheckpoint, error) {
	split := bytes.LastIndex(note, []byte("\n\n"))
	if split < 0 {
		return nil, errors.New("checkpoint: no blank line before the signatures")
	}
	text, sigs := note[:split+1], note[split+2:]
	if len(sigs) == 0 || sigs[len(sigs)-1] != '\n' {
		return nil, errors.New("checkpoint: signature block must end with a newline")
	}
	lines := strings.Split(string(text), "\n")
	if len(lines) < 4 { // origin, size, root, "" after the last newline
		return nil, errors.New("checkpoint: need origin, size and root hash lines")
	}
	sc := &SignedCheckpoint{Text: string(text)}
	sc.Origin = lines[0]
	if sc.Origin == "" {
		return nil, errors.New("checkpoint: empty origin")
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: bad tree size %q", truncate(lines[1], 32))
	}
	sc.Size = size
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != 32 {
		return nil, errors.New("checkpoint: root hash is not base64 of 32 bytes")
	}
	copy(sc.Root[:], root)
	for _, line := range strings.Split(strings.TrimSuffix(string(sigs), "\n"), "\n") {
		rest, ok := strings.CutPrefix(line, "\u2014 ")
		if !ok {
			return nil, errors.New("checkpoint: signature line does not start with an em dash")
		}
		name, b64, ok := strings.Cut(rest, " ")
		if !ok || name == "" {
			return nil, errors.New("checkpoint: signature line needs a name and a signature")
		}
		raw, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(raw) < 5 {
			return nil, errors.New("checkpoint: signature is not base64 of a key hint and a signature")
		}
		var s NoteSignature
		s.Name = name
		copy(s.KeyHint[:], raw[:4])
		s.Sig = raw[4:]
		sc.Signatures = append(sc.Signatures, s)
	}
	return sc, nil
}

// KeyHint is the key hint of a note signature by pub: the first four
// bytes of the SHA-256 of its DER SubjectPublicKeyInfo.
func KeyHint(pub crypto.PublicKey) ([4]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return [4]byte{}, err
	}
	sum := sha256.Sum256(der)
	return [4]byte(sum[:4]), nil
}

// VerifyCheckpoint parses note and checks that it carries a valid signature
// by pub (ECDSA over SHA-256 of the note text, the key hint matching).
func VerifyCheckpoint(note []byte, pub *ecdsa.PublicKey) (*SignedCheckpoint, error) {
	sc, err := ParseCheckpoint(note)
	if err != nil {
		return nil, err
	}
	hint, err := KeyHint(pub)
	if err != nil {
		return nil, err
	}
	d := sha256.Sum256([]byte(sc.Text))
	for _, s := range sc.Signatures {
		if s.KeyHint == hint && ecdsa.VerifyASN1(pub, d[:], s.Sig) {
			return sc, nil
		}
	}
	return nil, errors.New("checkpoint: not signed by the log's key")
}
