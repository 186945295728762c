package root

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Service selectors of a signing config.
const (
	SelectorAll   = "ALL"
	SelectorAny   = "ANY"
	SelectorExact = "EXACT"
)

// SigningConfig is sigstore's signing_config.v0.2.json.
type SigningConfig struct {
	MediaType       string         `json:"mediaType"`
	CAURLs          []Service      `json:"caUrls"`
	OIDCURLs        []Service      `json:"oidcUrls"`
	RekorTlogURLs   []Service      `json:"rekorTlogUrls"`
	RekorTlogConfig *ServiceConfig `json:"rekorTlogConfig,omitempty"`
	TSAURLs         []Service      `json:"tsaUrls"`
	TSAConfig       *ServiceConfig `json:"tsaConfig,omitempty"`
}

// Service is one endpoint in a signing config. For a CA, MajorAPIVersion 1
// means Fulcio (clients POST to /api/v2/signingCert); for a log, 1 is the
// Rekor v1 API and 2 rekor-tiles; a TSA URL is the full POST URL.
type Service struct {
	URL             string   `json:"url"`
	MajorAPIVersion int      `json:"majorApiVersion"`
	ValidFor        Validity `json:"validFor"`
	Operator        string   `json:"operator,omitempty"`
}

// ServiceConfig selects among services; Count is for EXACT only.
type ServiceConfig struct {
	Selector string `json:"selector"`
	Count    int    `json:"count,omitempty"`
}

// NewService is a v1 API endpoint at url valid from start (truncated to the
// second, UTC).
func NewService(url, operator string, start time.Time) Service {
	return Service{URL: url, MajorAPIVersion: 1, ValidFor: Validity{Start: start.UTC().Truncate(time.Second)}, Operator: operator}
}

// NewSigningConfig describes one server that is CA, OIDC issuer and
// Rekor v1 log at baseURL, without a timestamp authority.
func NewSigningConfig(baseURL, operator string, start time.Time) *SigningConfig {
	svc := []Service{NewService(baseURL, operator, start)}
	return &SigningConfig{MediaType: SigningConfigMediaType, CAURLs: svc, OIDCURLs: svc, RekorTlogURLs: svc,
		TSAURLs: []Service{}, RekorTlogConfig: &ServiceConfig{Selector: SelectorAny}, TSAConfig: &ServiceConfig{Selector: SelectorAny}}
}

// ParseSigningConfig parses and validates a signing_config.v0.2.json: the
// exact v0.2 media type, absolute http(s) service URLs with a major API
// version, and known selectors. Errors wrap ErrInvalid.
func ParseSigningConfig(b []byte) (*SigningConfig, error) {
	var sc SigningConfig
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sc); err != nil {
		return nil, fmt.Errorf("%w: signing config is not valid signing_config.json: %v", ErrInvalid, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: signing config has data after the JSON object", ErrInvalid)
	}
	if sc.MediaType != SigningConfigMediaType {
		return nil, fmt.Errorf("%w: signing config media type %q is not %q", ErrInvalid, sc.MediaType, SigningConfigMediaType)
	}
	for _, group := range []struct {
		name string
		svcs []Service
	}{{"caUrls", sc.CAURLs}, {"oidcUrls", sc.OIDCURLs}, {"rekorTlogUrls", sc.RekorTlogURLs}, {"tsaUrls", sc.TSAURLs}} {
		for i, s := range group.svcs {
			if err := checkService(s); err != nil {
				return nil, fmt.Errorf("%w: signing config %s[%d] (%s): %v", ErrInvalid, group.name, i, s.URL, err)
			}
		}
	}
	for name, c := range map[string]*ServiceConfig{"rekorTlogConfig": sc.RekorTlogConfig, "tsaConfig": sc.TSAConfig} {
		if c == nil {
			continue
		}
		switch c.Selector {
		case SelectorAll, SelectorAny:
		case SelectorExact:
			if c.Count <= 0 {
				return nil, fmt.Errorf("%w: signing config %s: selector EXACT needs a positive count", ErrInvalid, name)
			}
		default:
			return nil, fmt.Errorf("%w: signing config %s: selector %q is not ALL, ANY or EXACT", ErrInvalid, name, c.Selector)
		}
	}
	return &sc, nil
}

func checkService(s Service) error {
	u, err := url.Parse(s.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("url %q is not an absolute http(s) URL", s.URL)
	}
	if s.MajorAPIVersion < 1 {
		return fmt.Errorf("majorApiVersion %d is not a positive version", s.MajorAPIVersion)
	}
	if e := s.ValidFor.End; e != nil && !e.After(s.ValidFor.Start) {
		return fmt.Errorf("validFor.end is not after its start")
	}
	return nil
}

// Marshal encodes the signing config as indented JSON ending in a newline
// (deterministic, like TrustedRoot.Marshal).
func (sc *SigningConfig) Marshal() ([]byte, error) { return marshal(sc) }

// CheckAgainst makes sure the signing config only sends clients to services
// tr vouches for: every CA URL is the uri of one of tr's certificate
// authorities, every log URL the baseUrl of one of its tlogs and every TSA
// URL the uri of one of its timestamp authorities. A signing config fetched
// next to a pinned trusted root is checked this way, so a tampered one
// cannot send ID tokens or signatures elsewhere. OIDC URLs are not checked
// (the trusted root does not name issuers).
func (sc *SigningConfig) CheckAgainst(tr *TrustedRoot) error {
	norm := func(s string) string { return strings.TrimSuffix(s, "/") }
	known := func(list []string, u string) bool {
		for _, k := range list {
			if norm(k) == norm(u) {
				return true
			}
		}
		return false
	}
	var cas, logs, tsas []string
	for _, c := range tr.CertificateAuthorities {
		cas = append(cas, c.URI)
	}
	for _, l := range tr.Tlogs {
		logs = append(logs, l.BaseURL)
	}
	for _, c := range tr.TimestampAuthorities {
		tsas = append(tsas, c.URI)
	}
	for _, s := range sc.CAURLs {
		if !known(cas, s.URL) {
			return fmt.Errorf("%w: signing config CA %s is not a certificate authority of the trusted root (%s)", ErrInvalid, s.URL, strings.Join(cas, ", "))
		}
	}
	for _, s := range sc.RekorTlogURLs {
		if !known(logs, s.URL) {
			return fmt.Errorf("%w: signing config transparency log %s is not a tlog of the trusted root (%s)", ErrInvalid, s.URL, strings.Join(logs, ", "))
		}
	}
	for _, s := range sc.TSAURLs {
		if !known(tsas, s.URL) {
			return fmt.Errorf("%w: signing config timestamp authority %s is not in the trusted root (%s)", ErrInvalid, s.URL, strings.Join(tsas, ", "))
		}
	}
	return nil
}

// ParseSigningConfigFor parses a signing config fetched next to the
// (pinned) trusted root tr, as ParseSigningConfig, and accepts it only if
// it names services of tr (CheckAgainst).
func ParseSigningConfigFor(b []byte, tr *TrustedRoot) (*SigningConfig, error) {
	sc, err := ParseSigningConfig(b)
	if err != nil {
		return nil, err
	}
	if err := sc.CheckAgainst(tr); err != nil {
		return nil, err
	}
	return sc, nil
}

// SelectService returns the URL of the service of API version 1 valid at
// now with the newest start, as sigstore clients select one (Fulcio, Rekor
// v1); "" when there is none.
func SelectService(svcs []Service, now time.Time) string {
	var best *Service
	for i, s := range svcs {
		if s.MajorAPIVersion != 1 || !s.ValidFor.Contains(now) {
			continue
		}
		if best == nil || s.ValidFor.Start.After(best.ValidFor.Start) {
			best = &svcs[i]
		}
	}
	if best == nil {
		return ""
	}
	return best.URL
}
