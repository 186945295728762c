package rekor

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
)

// setPayload is what a signed entry timestamp covers (Rekor's LogEntryAnon
// without verification and attestation), fields in RFC 8785 order.
type setPayload struct {
	Body           string `json:"body"`
	IntegratedTime int64  `json:"integratedTime"`
	LogID          string `json:"logID"`
	LogIndex       int64  `json:"logIndex"`
}

// SETPayload returns the RFC 8785 JSON a signed entry timestamp signs:
// {"body":<base64 canonical body>,"integratedTime":..,"logID":<hex>,"logIndex":..}.
// The keys are in RFC 8785 order and base64 and hex need no escaping, so
// encoding/json's output is already canonical. logID is lowercased, as the
// log signs it.
func SETPayload(body []byte, integratedTime int64, logID string, logIndex int64) ([]byte, error) {
	return json.Marshal(setPayload{Body: base64.StdEncoding.EncodeToString(body), IntegratedTime: integratedTime,
		LogID: strings.ToLower(logID), LogIndex: logIndex})
}

// VerifySET checks e's signed entry timestamp with key, the key of the log
// e names: an ECDSA signature over the SHA-256 of SETPayload. Which key to
// trust, and when, is the caller's decision. Errors wrap ErrSET.
func VerifySET(e *LogEntry, key *ecdsa.PublicKey) error {
	if len(e.SET) == 0 {
		return fmt.Errorf("%w: the entry carries no signed entry timestamp", ErrSET)
	}
	canon, err := SETPayload(e.Body, e.IntegratedTime, e.LogID, e.LogIndex)
	if err != nil {
		return err
	}
	h := sha256.Sum256(canon)
	if !ecdsa.VerifyASN1(key, h[:], e.SET) {
		return fmt.Errorf("%w with the log key %s: the entry (index %d, time %d) was changed or the timestamp was signed by another log", ErrSET, e.LogID, e.LogIndex, e.IntegratedTime)
	}
	return nil
}
