package rekor

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	jsonv1 "github.com/go-json-experiment/json/v1"
)

// LogEntry is one transparency-log entry as Rekor v1 returns it, as sigstore
// bundles and cosign's bundle annotation carry it.
type LogEntry struct {
	Body           []byte // the canonical entry (decoded from base64)
	IntegratedTime int64
	LogIndex       int64
	LogID          string // hex SHA-256 of the log key's DER SubjectPublicKeyInfo
	SET            []byte // signed entry timestamp (ECDSA, ASN.1), if any
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

// WireEntry is a log entry on the Rekor v1 API (the value of the
// {"<uuid>": ...} map of every entry response): base64 body and SET, hex
// log ID, proof hashes and root hash.
type WireEntry struct {
	Body           string `json:"body"`
	IntegratedTime int64  `json:"integratedTime"`
	LogID          string `json:"logID"`
	LogIndex       *int64 `json:"logIndex"`
	Verification   *struct {
		InclusionProof       *WireProof `json:"inclusionProof,omitempty"`
		SignedEntryTimestamp string     `json:"signedEntryTimestamp"`
	} `json:"verification"`
}

// WireProof is an inclusion proof on the Rekor v1 API.
type WireProof struct {
	Checkpoint string   `json:"checkpoint"`
	Hashes     []string `json:"hashes"`
	LogIndex   int64    `json:"logIndex"`
	RootHash   string   `json:"rootHash"`
	TreeSize   int64    `json:"treeSize"`
}

// Wire is e as the log's API writes it.
func (e *LogEntry) Wire() WireEntry {
	idx := e.LogIndex
	w := WireEntry{Body: base64.StdEncoding.EncodeToString(e.Body), IntegratedTime: e.IntegratedTime, LogID: e.LogID, LogIndex: &idx}
	w.Verification = &struct {
		InclusionProof       *WireProof `json:"inclusionProof,omitempty"`
		SignedEntryTimestamp string     `json:"signedEntryTimestamp"`
	}{SignedEntryTimestamp: base64.StdEncoding.EncodeToString(e.SET)}
	if p := e.Proof; p != nil {
		hs := make([]string, len(p.Hashes))
		for i, h := range p.Hashes {
			hs[i] = hex.EncodeToString(h)
		}
		w.Verification.InclusionProof = &WireProof{Checkpoint: p.Checkpoint, Hashes: hs, LogIndex: p.LogIndex,
			RootHash: hex.EncodeToString(p.RootHash), TreeSize: p.TreeSize}
	}
	return w
}

// entry decodes a wire entry.
func (w WireEntry) entry() (*LogEntry, error) {
	if w.LogIndex == nil || w.Body == "" || w.Verification == nil {
		return nil, errors.New("the entry lacks its body, log index or verification")
	}
	body, err := base64.StdEncoding.DecodeString(w.Body)
	if err != nil {
		return nil, errors.New("the entry body is not base64")
	}
	set, err := base64.StdEncoding.DecodeString(w.Verification.SignedEntryTimestamp)
	if err != nil {
		return nil, errors.New("the signed entry timestamp is not base64")
	}
	e := &LogEntry{Body: body, IntegratedTime: w.IntegratedTime, LogIndex: *w.LogIndex, LogID: w.LogID, SET: set}
	if p := w.Verification.InclusionProof; p != nil {
		ip := &InclusionProof{LogIndex: p.LogIndex, TreeSize: p.TreeSize, Checkpoint: p.Checkpoint}
		if ip.RootHash, err = hex.DecodeString(p.RootHash); err != nil {
			return nil, errors.New("the inclusion proof's root hash is not hex")
		}
		for _, h := range p.Hashes {
			b, err := hex.DecodeString(h)
			if err != nil {
				return nil, errors.New("an inclusion proof hash is not hex")
			}
			ip.Hashes = append(ip.Hashes, b)
		}
		e.Proof = ip
	}
	return e, nil
}

// ParseEntryResponse parses a Rekor v1 entry response, {"<uuid>": {body,
// integratedTime, logID, logIndex, verification}}, holding exactly one
// entry. Nothing is verified.
func ParseEntryResponse(raw []byte) (*LogEntry, error) {
	var entries map[string]WireEntry
	if err := json.Unmarshal(raw, &entries); err != nil {
		return nil, fmt.Errorf("the response is not a log entry: %v", err)
	}
	if len(entries) != 1 {
		return nil, fmt.Errorf("the response holds %d entries, want 1", len(entries))
	}
	for _, w := range entries {
		return w.entry()
	}
	return nil, errors.New("unreachable")
}

// MaxSearchQueries is Rekor's limit on the queries of one entries/retrieve
// request.
const MaxSearchQueries = 10

// SearchQuery is Rekor's SearchLogQuery (POST
// /api/v1/log/entries/retrieve): entries by UUID, by log index, or by
// proposed entry.
type SearchQuery struct {
	EntryUUIDs []string          `json:"entryUUIDs"`
	LogIndexes []*int64          `json:"logIndexes"`
	Entries    []json.RawMessage `json:"entries"`
}

// ParseSearchQuery parses a search strictly (unknown fields and trailing
// data are errors) and refuses more than MaxSearchQueries queries or a
// negative index.
func ParseSearchQuery(raw []byte) (*SearchQuery, error) {
	var q SearchQuery
	if err := strictUnmarshal(raw, &q); err != nil {
		return nil, fmt.Errorf("search query is not valid JSON ({entryUUIDs|logIndexes|entries: [...]}): %v", err)
	}
	if n := len(q.EntryUUIDs) + len(q.LogIndexes) + len(q.Entries); n > MaxSearchQueries {
		return nil, fmt.Errorf("maximum number of queries in one search is %d (got %d)", MaxSearchQueries, n)
	}
	for _, idx := range q.LogIndexes {
		if idx == nil || *idx < 0 {
			return nil, errors.New("logIndexes must be non-negative integers")
		}
	}
	return &q, nil
}

// Bundle is cosign's "dev.sigstore.cosign/bundle" layer annotation: a log
// entry without its inclusion proof, and the SET over it. Field names and
// order are cosign's (it prints the bundle with a verified signature).
type Bundle struct {
	SignedEntryTimestamp []byte        `json:"SignedEntryTimestamp"`
	Payload              BundlePayload `json:"Payload"`
}

// BundlePayload is the part of a bundle the signed entry timestamp covers.
type BundlePayload struct {
	Body           string `json:"body"`
	IntegratedTime int64  `json:"integratedTime"`
	LogIndex       int64  `json:"logIndex"`
	LogID          string `json:"logID"`
}

// ParseBundle parses a bundle annotation. Only the shape is checked.
func ParseBundle(raw string) (*Bundle, error) {
	var b Bundle
	if err := jsonv1.Unmarshal([]byte(raw), &b); err != nil {
		return nil, fmt.Errorf("bundle annotation is not valid JSON: %v", err)
	}
	if b.Payload.Body == "" || b.Payload.LogID == "" {
		return nil, errors.New("bundle annotation has no logged entry (Payload.body and Payload.logID are required)")
	}
	return &b, nil
}

// Entry returns the bundle as a log entry (without inclusion proof).
func (b *Bundle) Entry() (*LogEntry, error) {
	body, err := base64.StdEncoding.DecodeString(b.Payload.Body)
	if err != nil {
		return nil, errors.New("logged entry body is not base64")
	}
	return &LogEntry{Body: body, IntegratedTime: b.Payload.IntegratedTime, LogIndex: b.Payload.LogIndex, LogID: b.Payload.LogID,
		SET: b.SignedEntryTimestamp}, nil
}

// BundleOf is the bundle annotation cosign writes for a log entry.
func BundleOf(e *LogEntry) *Bundle {
	return &Bundle{SignedEntryTimestamp: e.SET, Payload: BundlePayload{Body: base64.StdEncoding.EncodeToString(e.Body),
		IntegratedTime: e.IntegratedTime, LogIndex: e.LogIndex, LogID: e.LogID}}
}
