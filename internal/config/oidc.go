package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strings"
)

// OIDCIssuer is a trusted external OIDC issuer (--oidc-issuer).
type OIDCIssuer struct {
	URL          string // issuer URL, exactly as the tokens' iss
	Type         string // gitlab-pipeline (default), email or generic
	SubjectClaim string // generic: the claim holding the identity (default sub)
	CACert       string // PEM file of CAs trusted for TLS to the issuer (default: system roots)
}

// String renders the issuer in the flag syntax.
func (o OIDCIssuer) String() string {
	s := "url=" + o.URL + ",type=" + o.Type
	if o.SubjectClaim != "" {
		s += ",subject-claim=" + o.SubjectClaim
	}
	if o.CACert != "" {
		s += ",ca-cert=" + o.CACert
	}
	return s
}

// ParseOIDCIssuers parses the --oidc-issuer syntax: comma-separated
// key=value items (url, type, subject-claim, ca-cert); every url= item
// starts a new issuer, so one value can hold several. A bare item
// containing "://" is taken as url=.
func ParseOIDCIssuers(s string) ([]OIDCIssuer, error) {
	var out []OIDCIssuer
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		k, v, ok := strings.Cut(item, "=")
		if !ok && strings.Contains(item, "://") {
			k, v, ok = "url", item, true
		}
		if !ok {
			return nil, fmt.Errorf("oidc-issuer item %q: want key=value (keys: url, type, subject-claim, ca-cert)", item)
		}
		k = strings.ToLower(strings.TrimSpace(k))
		v = strings.TrimSpace(v)
		if k == "url" {
			out = append(out, OIDCIssuer{URL: v, Type: "gitlab-pipeline"})
			continue
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("oidc-issuer %q: start each issuer with url=<issuer URL>", s)
		}
		cur := &out[len(out)-1]
		switch k {
		case "type":
			cur.Type = v
		case "subject-claim", "subject_claim":
			cur.SubjectClaim = v
		case "ca-cert", "ca_cert":
			cur.CACert = v
		default:
			return nil, fmt.Errorf("oidc-issuer item %q: unknown key %q (keys: url, type, subject-claim, ca-cert)", item, k)
		}
	}
	return out, nil
}

// oidcIssuersValue is the pflag.Value (and pflag.SliceValue, so that
// HALLMARK_OIDC_ISSUER and the config file can set it) of --oidc-issuer.
type oidcIssuersValue struct {
	p       *[]OIDCIssuer
	changed bool
}

func (v *oidcIssuersValue) Set(s string) error {
	iss, err := ParseOIDCIssuers(s)
	if err != nil {
		return err
	}
	if !v.changed {
		*v.p = nil
		v.changed = true
	}
	*v.p = append(*v.p, iss...)
	return nil
}

func (v *oidcIssuersValue) Type() string { return "issuer" }

func (v *oidcIssuersValue) String() string {
	if v.p == nil || len(*v.p) == 0 {
		return ""
	}
	return "[" + strings.Join(v.GetSlice(), " ") + "]"
}

// Append, Replace and GetSlice implement pflag.SliceValue. ApplyEnv splits
// env and file values on commas, so Replace joins the pieces back before
// parsing (each url= starts an issuer).
func (v *oidcIssuersValue) Append(s string) error { return v.Set(s) }

func (v *oidcIssuersValue) Replace(items []string) error {
	iss, err := ParseOIDCIssuers(strings.Join(items, ","))
	if err != nil {
		return err
	}
	*v.p = iss
	v.changed = true
	return nil
}

func (v *oidcIssuersValue) GetSlice() []string {
	var out []string
	for _, o := range *v.p {
		out = append(out, o.String())
	}
	return out
}

// yamlList turns a YAML list from the config file into the comma-separated
// flag syntax: scalars as they are, maps (e.g. an oidc-issuer entry with
// url:, type: keys) as key=value items with url first.
func yamlList(list []any) string {
	var items []string
	for _, e := range list {
		m, ok := e.(map[string]any)
		if !ok {
			items = append(items, fmt.Sprint(e))
			continue
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			if k != "url" {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		if _, ok := m["url"]; ok {
			keys = append([]string{"url"}, keys...)
		}
		for _, k := range keys {
			items = append(items, k+"="+fmt.Sprint(m[k]))
		}
	}
	return strings.Join(items, ",")
}

func (c *Server) validateOIDC() []error {
	var errs []error
	if c.OIDCTokenTTL <= 0 || c.OIDCMaxTokenTTL <= 0 {
		errs = append(errs, errors.New("oidc-token-ttl and oidc-max-token-ttl must be positive"))
	} else if c.OIDCTokenTTL > c.OIDCMaxTokenTTL {
		errs = append(errs, fmt.Errorf("oidc-token-ttl %s exceeds oidc-max-token-ttl %s", c.OIDCTokenTTL, c.OIDCMaxTokenTTL))
	}
	if c.OIDCKeyRotation < 0 {
		errs = append(errs, errors.New("oidc-key-rotation must not be negative (0 disables automatic rotation)"))
	} else if c.OIDCKeyRotation > 0 && c.OIDCKeyRotation < c.OIDCMaxTokenTTL {
		errs = append(errs, fmt.Errorf("oidc-key-rotation %s is shorter than oidc-max-token-ttl %s; rotate less often", c.OIDCKeyRotation, c.OIDCMaxTokenTTL))
	}
	if c.OIDCJWKSCacheTTL <= 0 {
		errs = append(errs, errors.New("oidc-jwks-cache-ttl must be positive"))
	}
	seen := map[string]bool{}
	for _, o := range c.OIDCIssuers {
		u, err := url.Parse(o.URL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			errs = append(errs, fmt.Errorf("oidc-issuer %q: want url=https://host[/path] (exactly the iss of its tokens)", o.URL))
			continue
		}
		if seen[o.URL] {
			errs = append(errs, fmt.Errorf("oidc-issuer %s is listed twice", o.URL))
		}
		seen[o.URL] = true
		switch o.Type {
		case "gitlab-pipeline", "email":
			if o.SubjectClaim != "" {
				errs = append(errs, fmt.Errorf("oidc-issuer %s: subject-claim is only for type=generic", o.URL))
			}
		case "generic":
		default:
			errs = append(errs, fmt.Errorf("oidc-issuer %s: type %q: use gitlab-pipeline, email or generic", o.URL, o.Type))
		}
		if o.CACert != "" {
			if _, err := os.Stat(o.CACert); err != nil {
				errs = append(errs, fmt.Errorf("oidc-issuer %s: ca-cert: %w", o.URL, err))
			}
		}
	}
	return errs
}
