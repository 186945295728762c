package payload

import (
	"encoding/json"
	"fmt"
	"net/url"
	"time"
)

// Predicate types behind cosign's --type names.
const (
	PredicateCustom    = "https://cosign.sigstore.dev/attestation/v1"
	PredicateSLSA02    = "https://slsa.dev/provenance/v0.2"
	PredicateSLSA1     = "https://slsa.dev/provenance/v1"
	PredicateSPDX      = "https://spdx.dev/Document"
	PredicateCycloneDX = "https://cyclonedx.org/bom"
	PredicateLink      = "https://in-toto.io/Link/v1"
	PredicateVuln      = "https://cosign.sigstore.dev/attestation/vuln/v1"
	PredicateOpenVEX   = "https://openvex.dev/ns"
)

var predicateNames = map[string]string{
	"custom": PredicateCustom, "slsaprovenance": PredicateSLSA02, "slsaprovenance02": PredicateSLSA02,
	"slsaprovenance1": PredicateSLSA1, "spdx": PredicateSPDX, "spdxjson": PredicateSPDX, "cyclonedx": PredicateCycloneDX,
	"link": PredicateLink, "vuln": PredicateVuln, "openvex": PredicateOpenVEX,
}

// PredicateType resolves cosign's --type value: a known name (custom,
// slsaprovenance, slsaprovenance02, slsaprovenance1, spdx, spdxjson,
// cyclonedx, link, vuln, openvex) or any absolute URI, which passes
// through.
func PredicateType(t string) (string, error) {
	if u, ok := predicateNames[t]; ok {
		return u, nil
	}
	if u, err := url.Parse(t); err == nil && u.Scheme != "" && (u.Host != "" || u.Opaque != "") {
		return t, nil
	}
	return "", fmt.Errorf("invalid predicate type %q: use custom, slsaprovenance, slsaprovenance02, slsaprovenance1, spdx, spdxjson, cyclonedx, link, vuln, openvex or a URI", t)
}

// Predicate turns the predicate file's bytes into the statement's
// predicate as cosign does: JSON kept as is (compacted) for a typed
// predicate; for the custom type the file wrapped as
// {"Data": <file as a string>, "Timestamp": <now, RFC 3339>}.
func Predicate(predicateType string, file []byte, now time.Time) (json.RawMessage, error) {
	if predicateType == PredicateCustom {
		return json.Marshal(struct {
			Data      string
			Timestamp string
		}{string(file), now.UTC().Format(time.RFC3339)})
	}
	var v json.RawMessage
	if err := json.Unmarshal(file, &v); err != nil {
		return nil, fmt.Errorf("the predicate is not JSON: %v", err)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(v, &obj); err != nil {
		return nil, fmt.Errorf("the predicate is not a JSON object: %v", err)
	}
	return json.Marshal(v) // compacts
}
