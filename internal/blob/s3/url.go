package s3

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// Config configures a Store.
type Config struct {
	Bucket    string
	Prefix    string // key prefix without leading or trailing '/'; "" = bucket root
	Endpoint  string // base URL of an S3-compatible server; "" = AWS
	Region    string // "" = from the AWS environment, else us-east-1
	PathStyle bool   // bucket in the path (most S3-compatible servers), not the host name

	// Redirect, if positive, makes RedirectURL return presigned GET URLs
	// valid this long; zero means blobs are served by the registry.
	Redirect time.Duration
	// PartSize is the size of the parts a large chunk is uploaded in
	// (default 8 MiB, at least 5 MiB, S3's minimum part size).
	PartSize int64
	// Credentials, if set, replace the AWS SDK's default chain
	// (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, shared files,
	// web identity, instance roles).
	Credentials aws.CredentialsProvider
	// Buffers is how many part buffers (PartSize bytes each) uploads may
	// hold at once, across all requests (default 64); a request waits for
	// one when all are taken.
	Buffers int
	// MaxAttempts is how often a failing request is tried (default 3).
	MaxAttempts int
	// Now is the clock used to age uploads (default time.Now).
	Now func() time.Time
}

// bucketName is S3's rule for bucket names (3-63 lowercase letters,
// digits, dots and hyphens, starting and ending with a letter or digit).
var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// ParseURL parses a blob URL of the form
//
//	s3://bucket[/prefix][?endpoint=http://host:port&region=us-east-1&path-style=true]
//
// Credentials never go into the URL: the AWS SDK's default chain supplies
// them.
func ParseURL(raw string) (Config, error) {
	var c Config
	u, err := url.Parse(raw)
	if err != nil {
		return c, fmt.Errorf("blob url: %w", err)
	}
	if u.Scheme != "s3" {
		return c, fmt.Errorf("blob url %q: scheme must be s3", redact(u))
	}
	if u.User != nil {
		return c, errors.New("blob url: credentials do not belong in the URL; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) instead")
	}
	if u.Opaque != "" || !bucketName.MatchString(u.Host) || strings.Contains(u.Host, "..") {
		return c, fmt.Errorf("blob url %q: want s3://bucket/prefix with a valid bucket name (3-63 of a-z, 0-9, '.', '-')", redact(u))
	}
	if u.Fragment != "" {
		return c, fmt.Errorf("blob url %q: unexpected fragment", redact(u))
	}
	c.Bucket = u.Host
	prefix := strings.Trim(u.Path, "/")
	for _, seg := range strings.Split(prefix, "/") {
		if prefix != "" && (seg == "" || seg == "." || seg == "..") {
			return c, fmt.Errorf("blob url %q: the prefix may not contain empty, '.' or '..' segments", redact(u))
		}
	}
	if len(prefix) > 512 {
		return c, fmt.Errorf("blob url: prefix is %d bytes; keep it under 512", len(prefix))
	}
	c.Prefix = prefix
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return c, fmt.Errorf("blob url query: %w", err)
	}
	for k, vs := range q {
		if len(vs) != 1 {
			return c, fmt.Errorf("blob url: parameter %q given %d times", k, len(vs))
		}
		v := vs[0]
		switch k {
		case "endpoint":
			e, err := url.Parse(v)
			if err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" || e.User != nil || e.RawQuery != "" || e.Fragment != "" {
				// Not echoed: it may hold credentials.
				return c, errors.New("blob url: endpoint: want http(s)://host[:port], without credentials, query or fragment")
			}
			c.Endpoint = strings.TrimSuffix(v, "/")
		case "region":
			if v == "" || len(v) > 64 || strings.ContainsFunc(v, func(r rune) bool { return !(r == '-' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9') }) {
				return c, fmt.Errorf("blob url: region %q: want a region name such as us-east-1", truncate(v))
			}
			c.Region = v
		case "path-style":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return c, fmt.Errorf("blob url: path-style %q: want true or false", truncate(v))
			}
			c.PathStyle = b
		default:
			return c, fmt.Errorf("blob url: unknown parameter %q (known: endpoint, region, path-style)", truncate(k))
		}
	}
	return c, nil
}

// String describes the store for logs: bucket, prefix and endpoint, never
// credentials.
func (c Config) String() string {
	s := "s3://" + c.Bucket
	if c.Prefix != "" {
		s += "/" + c.Prefix
	}
	if c.Endpoint != "" {
		s += " at " + c.Endpoint
	}
	return s
}

// redact renders u for an error message without its user info.
func redact(u *url.URL) string {
	v := *u
	v.User = nil
	return truncate(v.String())
}

func truncate(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}
