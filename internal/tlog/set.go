package tlog

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
)

// setPayload is what a signed entry timestamp covers (Rekor's LogEntryAnon
// without verification and attestation).
type setPayload struct {
	Body           string `json:"body"`
	IntegratedTime int64  `json:"integratedTime"`
	LogID          string `json:"logID"`
	LogIndex       int64  `json:"logIndex"`
}

// SETPayload returns the RFC 8785 JSON a signed entry timestamp signs:
// {"body":<base64 canonical body>,"integratedTime":..,"logID":<hex>,"logIndex":..}.
func SETPayload(body []byte, integratedTime int64, logID string, logIndex int64) ([]byte, error) {
	return canonicalJSON(setPayload{
		Body: base64.StdEncoding.EncodeToString(body), IntegratedTime: integratedTime, LogID: logID, LogIndex: logIndex,
	})
}

func (l *Log) signSET(e Entry) ([]byte, error) {
	if e.Index > 1<<53 {
		return nil, fmt.Errorf("tlog: log index %d exceeds what JSON numbers carry exactly", e.Index)
	}
	payload, err := SETPayload(e.Body, e.IntegratedTime, l.logIDHex, int64(e.Index))
	if err != nil {
		return nil, fmt.Errorf("tlog: SET payload: %w", err)
	}
	d := sha256.Sum256(payload)
	sig, err := l.signer.Sign(rand.Reader, d[:], crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("tlog: sign SET: %w", err)
	}
	return sig, nil
}
