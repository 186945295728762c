package web

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/pkg/fulcio"
	"github.com/hallmark-dev/hallmark/pkg/oci"
)

// Query is an incident search. Every condition given must hold (AND); a
// zero field does not filter.
type Query struct {
	// Commit: a full commit SHA (40 or 64 hex digits) or a prefix of at
	// least MinCommitPrefix hex digits. It matches the certificate's
	// source repository digest (.1.13) and the CA's sha claim, or, where
	// neither speaks, the commit annotations.
	Commit string
	// Pipeline: a pipeline id or URL (…/-/pipelines/<id>; GitHub:
	// …/actions/runs/<id>): the CA's pipeline_id claim, or the pipeline
	// annotations where no claim speaks.
	Pipeline string
	// Job: a job id or URL (…/-/jobs/<id>): the CA's job_id claim and the
	// certificate's run invocation URI (.1.21), or the job annotations.
	Job string
	// Project: a project path: signatures in repositories at or under it,
	// and signatures whose certificate the CA issued to that project.
	Project string
	// Ref: a git ref, full (refs/heads/main) or short (main).
	Ref string
	// User: the CI user: the CA's user_login claim, or the user
	// annotation where no claim speaks.
	User string
	// Runner: a runner id (the CA's runner_id claim: only the CA knows it).
	Runner string
	// Identity: the certificate identity (SAN) or key fingerprint.
	Identity string
	// Issuer: the OIDC issuer of the certificate.
	Issuer string
	// Annotations: signed annotations, each key=value exactly.
	Annotations []meta.KeyValue
	// Certificate: certificate extensions (dotted OID) with their value.
	Certificate []meta.KeyValue
	// Status: verified, invalid, unverified (any of them).
	Status []string
	// Since and Until bound when the signature was recorded: [Since, Until).
	Since, Until time.Time
	// Limit is the page size, 1..MaxLimit (default DefaultLimit).
	Limit int
	// Cursor continues a search where the page that returned it ended.
	Cursor string
}

// Query limits.
const (
	MinCommitPrefix = 7
	DefaultLimit    = 20
	MaxLimit        = 1000
	maxAnnotations  = 8
	maxCertificate  = 4
	maxValue        = 2048
	maxQueryBytes   = 16 << 10
)

// ErrBadQuery is wrapped by every ParseQuery error; the message says what
// was wrong.
var ErrBadQuery = errors.New("bad search query")

func badQuery(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadQuery, fmt.Sprintf(format, args...))
}

// Params are the query parameters ParseQuery knows.
var Params = []string{"commit", "pipeline", "job", "project", "ref", "user", "runner", "identity", "issuer",
	"annotation", "certificate", "status", "since", "until", "limit", "cursor"}

// ParseQuery reads a search from URL parameters (the names in Params;
// annotation, certificate and status may repeat, status may also be a
// comma list). now resolves relative times (since=24h: 24 hours ago).
// extra are further parameters the caller handles itself.
func ParseQuery(v url.Values, now time.Time, extra ...string) (Query, error) {
	q := Query{Limit: DefaultLimit}
	size := 0
	for k, vs := range v {
		if !slices.Contains(Params, k) && !slices.Contains(extra, k) {
			return Query{}, badQuery("unknown parameter %q; use %s", truncate(k, 40), strings.Join(Params, ", "))
		}
		size += len(k)
		for _, s := range vs {
			size += len(s)
		}
		if len(vs) > 1 && !slices.Contains([]string{"annotation", "certificate", "status"}, k) {
			return Query{}, badQuery("parameter %s is given %d times; give it once", k, len(vs))
		}
	}
	if size > maxQueryBytes {
		return Query{}, badQuery("the query is %d bytes long; the limit is %d", size, maxQueryBytes)
	}
	single := func(name string, dst *string) error {
		s := v.Get(name)
		if err := plainText(name, s); err != nil {
			return err
		}
		*dst = strings.TrimSpace(s)
		return nil
	}
	for _, f := range []struct {
		name string
		dst  *string
	}{{"commit", &q.Commit}, {"pipeline", &q.Pipeline}, {"job", &q.Job}, {"project", &q.Project}, {"ref", &q.Ref},
		{"user", &q.User}, {"runner", &q.Runner}, {"identity", &q.Identity}, {"issuer", &q.Issuer}, {"cursor", &q.Cursor}} {
		if err := single(f.name, f.dst); err != nil {
			return Query{}, err
		}
	}
	if q.Commit != "" {
		if err := checkCommit(q.Commit); err != nil {
			return Query{}, err
		}
	}
	if q.Project != "" {
		if err := oci.ValidateName(q.Project); err != nil {
			return Query{}, badQuery("project %q: %v", truncate(q.Project, 80), err)
		}
	}
	if q.Runner != "" && strings.Trim(q.Runner, "0123456789") != "" {
		return Query{}, badQuery("runner %q is not a runner id (digits)", truncate(q.Runner, 80))
	}
	for _, f := range []struct{ name, value string }{{"pipeline", q.Pipeline}, {"job", q.Job}} {
		if f.value == "" || strings.Trim(f.value, "0123456789") == "" {
			continue
		}
		if u, err := url.Parse(f.value); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return Query{}, badQuery("%s %q is neither an id (digits) nor an http(s) URL", f.name, truncate(f.value, 80))
		}
	}
	if len(v["annotation"]) > maxAnnotations {
		return Query{}, badQuery("%d annotation conditions; at most %d", len(v["annotation"]), maxAnnotations)
	}
	for _, a := range v["annotation"] {
		kv, err := keyValue("annotation", a)
		if err != nil {
			return Query{}, err
		}
		q.Annotations = append(q.Annotations, kv)
	}
	if len(v["certificate"]) > maxCertificate {
		return Query{}, badQuery("%d certificate conditions; at most %d", len(v["certificate"]), maxCertificate)
	}
	for _, c := range v["certificate"] {
		kv, err := keyValue("certificate", c)
		if err != nil {
			return Query{}, err
		}
		oid, ok := fulcio.Resolve(kv.Key)
		if !ok {
			return Query{}, badQuery("certificate=%q: want <extension>=<value> with the extension by name (e.g. sourceRepositoryDigest, sourceRepositoryRef, runInvocationURI, runnerEnvironment, buildConfigURI), number (13) or OID (%s)",
				truncate(c, 80), fulcio.OID(fulcio.SourceRepositoryDigest))
		}
		kv.Key = oid
		q.Certificate = append(q.Certificate, kv)
	}
	for _, s := range v["status"] {
		for _, st := range strings.Split(s, ",") {
			st = strings.TrimSpace(st)
			switch st {
			case meta.StatusVerified, meta.StatusInvalid, meta.StatusUnverified:
				if !slices.Contains(q.Status, st) {
					q.Status = append(q.Status, st)
				}
			default:
				return Query{}, badQuery("status %q: use verified, invalid or unverified (a comma list for several)", truncate(st, 40))
			}
		}
	}
	var err error
	if q.Since, err = parseTime("since", v.Get("since"), now); err != nil {
		return Query{}, err
	}
	if q.Until, err = parseTime("until", v.Get("until"), now); err != nil {
		return Query{}, err
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Since.Before(q.Until) {
		return Query{}, badQuery("since (%s) is not before until (%s)", q.Since.Format(time.RFC3339), q.Until.Format(time.RFC3339))
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			return Query{}, badQuery("limit must be between 1 and %d", MaxLimit)
		}
		q.Limit = n
	}
	if q.Cursor != "" {
		if _, err := decodeCursor(q.Cursor); err != nil {
			return Query{}, err
		}
	}
	return q, nil
}

// plainText refuses control characters and overlong values.
func plainText(name, s string) error {
	if len(s) > maxValue {
		return badQuery("%s is %d bytes long; the limit is %d", name, len(s), maxValue)
	}
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return badQuery("%s contains control characters", name)
	}
	return nil
}

// keyValue reads key=value; the value is matched exactly, so it may hold
// any character (annotations may), the key none that is a control.
func keyValue(name, s string) (meta.KeyValue, error) {
	k, val, ok := strings.Cut(s, "=")
	if !ok || strings.TrimSpace(k) == "" {
		return meta.KeyValue{}, badQuery("%s=%q: want %s=<key>=<value>, e.g. annotation=com.gitlab.ci.commit.sha=<sha>", name, truncate(s, 80), name)
	}
	if err := plainText(name+" key", k); err != nil {
		return meta.KeyValue{}, err
	}
	if len(val) > maxValue {
		return meta.KeyValue{}, badQuery("%s value is %d bytes long; the limit is %d", name, len(val), maxValue)
	}
	return meta.KeyValue{Key: strings.TrimSpace(k), Value: val}, nil
}

// checkCommit accepts 7 to 64 hex digits.
func checkCommit(c string) error {
	if len(c) < MinCommitPrefix || len(c) > 64 || strings.Trim(strings.ToLower(c), "0123456789abcdef") != "" {
		return badQuery("commit %q: give a commit SHA or a prefix of it, %d to 64 hex digits", truncate(c, 80), MinCommitPrefix)
	}
	return nil
}

// The times a query may name: those a time in int64 nanoseconds since
// 1970 holds, in whole years.
var (
	minQueryTime = time.Date(1678, 1, 1, 0, 0, 0, 0, time.UTC)
	maxQueryTime = time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC)
)

// parseTime reads an RFC 3339 time, a date (UTC midnight), or a duration
// (that long before now: 24h, 90m; or days: 7d).
func parseTime(name, s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t, err = time.Parse(time.DateOnly, s)
	}
	if err == nil {
		// The store compares times in nanoseconds since 1970 (an int64):
		// a time beyond would wrap around and silently match nothing.
		if t.Before(minQueryTime) || t.After(maxQueryTime) {
			return time.Time{}, badQuery("%s=%q: give a time between %d and %d", name, truncate(s, 60), minQueryTime.Year(), maxQueryTime.Year())
		}
		return t, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n >= 0 && n <= 36500 {
			return now.Add(-time.Duration(n) * 24 * time.Hour), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 && d <= 100*365*24*time.Hour {
		return now.Add(-d), nil
	}
	return time.Time{}, badQuery("%s=%q: give an RFC 3339 time (2025-01-31T12:00:00Z), a date (2025-01-31) or a duration ago (24h, 7d)", name, truncate(s, 60))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// Values is q as URL parameters (ParseQuery reads them back).
func (q Query) Values() url.Values {
	v := url.Values{}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	set("commit", q.Commit)
	set("pipeline", q.Pipeline)
	set("job", q.Job)
	set("project", q.Project)
	set("ref", q.Ref)
	set("user", q.User)
	set("runner", q.Runner)
	set("identity", q.Identity)
	set("issuer", q.Issuer)
	for _, a := range q.Annotations {
		v.Add("annotation", a.Key+"="+a.Value)
	}
	for _, c := range q.Certificate {
		v.Add("certificate", c.Key+"="+c.Value)
	}
	if len(q.Status) > 0 {
		v.Set("status", strings.Join(q.Status, ","))
	}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	if !q.Until.IsZero() {
		v.Set("until", q.Until.UTC().Format(time.RFC3339Nano))
	}
	if q.Limit != 0 && q.Limit != DefaultLimit {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	set("cursor", q.Cursor)
	return v
}

// search is q as the store runs it.
func (q Query) search(a meta.Access) (meta.SignatureSearch, error) {
	s := meta.SignatureSearch{Annotations: q.Annotations, CertExtensions: q.Certificate, Statuses: q.Status,
		Since: q.Since, Until: q.Until, Access: a, Limit: q.Limit}
	if q.Commit != "" {
		c := meta.NormalizeFact(meta.FieldCommit, q.Commit)
		s.Facts = append(s.Facts, meta.FactFilter{Field: meta.FieldCommit, Value: c, Prefix: len(c) != 40 && len(c) != 64})
	}
	for _, f := range []struct{ field, value string }{{meta.FieldPipeline, q.Pipeline}, {meta.FieldJob, q.Job}, {meta.FieldProject, q.Project},
		{meta.FieldRef, q.Ref}, {meta.FieldUser, q.User}, {meta.FieldRunner, q.Runner}, {meta.FieldIdentity, q.Identity}, {meta.FieldIssuer, q.Issuer}} {
		if f.value != "" {
			s.Facts = append(s.Facts, meta.FactFilter{Field: f.field, Value: meta.NormalizeFact(f.field, f.value)})
		}
	}
	if q.Cursor != "" {
		c, err := decodeCursor(q.Cursor)
		if err != nil {
			return meta.SignatureSearch{}, err
		}
		s.After = &c
	}
	return s, nil
}

// cursorVersion starts every cursor: a cursor of another layout is refused.
const cursorVersion = 1

// encodeCursor makes the opaque cursor of a position.
func encodeCursor(c meta.Cursor) string {
	var b [17]byte
	b[0] = cursorVersion
	binary.BigEndian.PutUint64(b[1:9], uint64(c.Created))
	binary.BigEndian.PutUint64(b[9:17], uint64(c.ID))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func decodeCursor(s string) (meta.Cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 17 || b[0] != cursorVersion {
		return meta.Cursor{}, badQuery("cursor %q is not one a search returned; start again without it", truncate(s, 40))
	}
	c := meta.Cursor{Created: int64(binary.BigEndian.Uint64(b[1:9])), ID: int64(binary.BigEndian.Uint64(b[9:17]))}
	if c.ID <= 0 {
		return meta.Cursor{}, badQuery("cursor %q is not one a search returned; start again without it", truncate(s, 40))
	}
	return c, nil
}
