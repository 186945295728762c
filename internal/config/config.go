package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"
)

// Server is the configuration of `hallmark server`.
type Server struct {
	Addr            string        // listen address
	ExternalURL     string        // base URL clients use to reach the server; default http://<addr>
	DataDir         string        // blobs, database and keys
	DatabaseURL     string        // postgres://... for the metadata database; empty: SQLite in DataDir
	BlobURL         string        // s3://bucket/prefix?...: blobs in S3; "" = the filesystem under DataDir
	BlobRedirect    bool          // answer blob GETs with a redirect to a presigned URL (S3 only)
	LogLevel        string        // debug, info, warn, error
	LogFormat       string        // json or text
	MaxManifestSize int64         // bytes
	SparseManifests bool          // accept manifests naming blobs or child manifests the repository lacks (OCI 1.1 sparse)
	UploadTTL       time.Duration // abandoned uploads are removed after this
	ShutdownTimeout time.Duration
	// BodyReadTimeout cuts off a request body that delivers less than
	// reqbody.MinProgress bytes (and does not end) within this long.
	BodyReadTimeout time.Duration
	TrustedKeys     []string // PEM public keys whose signatures the index marks verified
	// TrustedRoots are sigstore trusted roots (trusted_root.json files,
	// "NAME=FILE" or "FILE" named by its base name) that projects' trust
	// policies may name.
	TrustedRoots []string
	// DebugAddr, when set, serves Go's profiler (/debug/pprof/) on that
	// loopback address (host:port), apart from the registry.
	DebugAddr string
	// CAKeyType is the key type of the CA's root and intermediate when they
	// are created (first start): ecdsa-p256 or ecdsa-p384 (ca.ParseKeyType).
	CAKeyType string
	// BlobCacheSize ("20GiB"; "" or "0": off) keeps the S3 blobs this
	// replica served last in BlobCacheDir (default <data-dir>/blob-cache).
	BlobCacheSize string
	BlobCacheDir  string
	// IndexWorkers is the number of signature indexing workers (0: two
	// per CPU; -1: none on this replica).
	IndexWorkers int

	// KeyEncryptionKeyFile (flag) or KeyEncryptionKey (the value, from the
	// environment only: HALLMARK_KEY_ENCRYPTION_KEY) seals the keys the
	// replicas keep in PostgreSQL; one is required with DatabaseURL.
	KeyEncryptionKeyFile string
	KeyEncryptionKey     string

	// Access control and transport security (internal/auth).
	Auth         string // "on" (default), "token" (external token service) or "off" (open registry; loopback only)
	TLSCert      string // PEM certificate chain file; with TLSKey, serve HTTPS
	TLSKey       string // PEM private key file
	InsecureHTTP bool   // allow plain HTTP on a non-loopback address
	// TrustedProxies are the reverse proxies (addresses or CIDR prefixes)
	// whose X-Forwarded-For / X-Real-IP name the client (parsed and checked
	// by internal/auth.ParseTrustedProxies when auth is on).
	TrustedProxies []string
	// External token service (Auth "token"): the realm clients get tokens
	// from, the service (aud) and issuer (iss) of its tokens, and the PEM
	// file of its signing certificates and/or public keys.
	TokenRealm, TokenService, TokenIssuer, TokenCert string
	// SessionIdleTimeout ends a web console session after this long without
	// a request (internal/auth sessions; they also end 12 h after sign-in).
	SessionIdleTimeout time.Duration

	// OIDC: built-in issuer and trusted external issuers (internal/oidc).
	OIDCBuiltin      bool          // run the built-in CI job token issuer
	OIDCIssuers      []OIDCIssuer  // trusted external issuers
	OIDCTokenTTL     time.Duration // default lifetime of minted tokens
	OIDCMaxTokenTTL  time.Duration // longest lifetime a token may be minted with
	OIDCKeyRotation  time.Duration // rotate the signing key when older than this; 0 = on request only
	OIDCJWKSCacheTTL time.Duration // how long external issuers' discovery + JWKS are cached

	TUFTimestampExpiry time.Duration // lifetime of TUF timestamp metadata (internal/tuf)

	// Garbage collection and retention (internal/gc).
	GCInterval          time.Duration // time between sweeps; 0 disables the worker
	GCGrace             time.Duration // how long something unreferenced stays before it is collected
	GCUntaggedManifests bool          // also collect manifests no tag, index or subject keeps
}

// Defaults are the embedded defaults: a loopback registry keeping its data
// in ./hallmark-data.
func Defaults() Server {
	return Server{
		Addr:             "127.0.0.1:5000",
		DataDir:          "./hallmark-data",
		LogLevel:         "info",
		LogFormat:        "json",
		MaxManifestSize:  8 << 20,
		UploadTTL:        24 * time.Hour,
		ShutdownTimeout:  30 * time.Second,
		BodyReadTimeout:  30 * time.Second,
		Auth:             "on",
		OIDCBuiltin:      true,
		OIDCTokenTTL:     10 * time.Minute,
		OIDCMaxTokenTTL:  time.Hour,
		OIDCJWKSCacheTTL: 10 * time.Minute,

		TUFTimestampExpiry: 24 * time.Hour,
		SessionIdleTimeout: 30 * time.Minute,

		GCInterval: 10 * time.Minute,
		GCGrace:    24 * time.Hour,

		CAKeyType: "ecdsa-p256",
	}
}

// BlobCacheBytes is BlobCacheSize in bytes (0: no cache).
func (c *Server) BlobCacheBytes() (int64, error) {
	if c.BlobCacheSize == "" {
		return 0, nil
	}
	n, err := humanize.ParseBytes(c.BlobCacheSize)
	if err != nil || n > math.MaxInt64 {
		return 0, fmt.Errorf("blob-cache-size %q: want a size such as 20GiB, 500MB or 0", c.BlobCacheSize)
	}
	return int64(n), nil
}

// BindFlags registers the server flags on fs, writing into c.
func (c *Server) BindFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.Addr, "addr", c.Addr, "listen address (host:port)")
	fs.StringVar(&c.ExternalURL, "external-url", c.ExternalURL, "base URL clients reach this server at (issuer URL of the built-in OIDC issuer, URLs in the trusted root); default http://<addr>")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory for blobs, the metadata database and keys")
	fs.StringVar(&c.DatabaseURL, "database-url", c.DatabaseURL, "PostgreSQL metadata database (and transparency log) shared by replicas, postgres://user:password@host:port/db?sslmode=verify-full; empty: SQLite in --data-dir")
	fs.StringVar(&c.KeyEncryptionKeyFile, "key-encryption-key-file", c.KeyEncryptionKeyFile, "with --database-url: file holding the key (32 random bytes, base64 or hex: openssl rand -base64 32) that encrypts the server's keys in the database, the same on every replica; or give the key itself in env HALLMARK_KEY_ENCRYPTION_KEY")
	fs.StringVar(&c.BlobURL, "blob-url", c.BlobURL, "blob storage: s3://bucket/prefix?endpoint=URL&region=REGION&path-style=true for S3 (credentials from the AWS environment: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, shared files); empty: the filesystem under --data-dir")
	fs.BoolVar(&c.BlobRedirect, "blob-redirect", c.BlobRedirect, "answer blob GETs with a 307 redirect to a short-lived presigned S3 URL (clients must reach the S3 endpoint)")
	fs.StringVar(&c.BlobCacheSize, "blob-cache-size", c.BlobCacheSize, "with an S3 blob-url: keep up to this much of the blobs this replica served last on its local disk (e.g. 20GiB) and send them from there with sendfile; emptied at start; 0: off")
	fs.StringVar(&c.BlobCacheDir, "blob-cache-dir", c.BlobCacheDir, "directory of the blob cache (--blob-cache-size); its contents are removed at start; default <data-dir>/blob-cache")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log level: debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log format: json or text")
	fs.Int64Var(&c.MaxManifestSize, "max-manifest-size", c.MaxManifestSize, "largest manifest accepted, in bytes (at least 4194304)")
	fs.BoolVar(&c.SparseManifests, "sparse-manifests", c.SparseManifests, "accept manifests that name content the repository does not have (OCI 1.1 sparse manifests, e.g. an index mirrored with only some of its platforms): an index's child manifests and an image manifest's config and layers may be absent, and answer 404 until pushed; what is present must still match its descriptor. Off: such a push fails with MANIFEST_BLOB_UNKNOWN")
	fs.DurationVar(&c.UploadTTL, "upload-ttl", c.UploadTTL, "remove upload sessions idle for longer than this")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "how long to wait for requests to finish on SIGINT/SIGTERM")
	fs.DurationVar(&c.SessionIdleTimeout, "session-idle-timeout", c.SessionIdleTimeout, "sign web console users out after this long without a request (sessions end 12h after sign-in in any case)")
	fs.DurationVar(&c.BodyReadTimeout, "body-read-timeout", c.BodyReadTimeout, "cut off a request body that sends less than 64 KiB (and does not end) within this long; a large upload may take any time as long as it keeps coming")
	fs.StringSliceVar(&c.TrustedKeys, "trusted-key", c.TrustedKeys, "PEM public key file whose signatures the signature index marks verified (repeatable)")
	fs.StringSliceVar(&c.TrustedRoots, "trusted-root", c.TrustedRoots, "sigstore trusted root (trusted_root.json, e.g. the public-good instance's) that projects' trust policies may name, as NAME=FILE or FILE (named by its base name without .json); repeatable; this server's own is named hallmark")
	fs.StringVar(&c.DebugAddr, "debug-addr", c.DebugAddr, "serve Go's profiler (/debug/pprof/: CPU, heap, goroutines) on this loopback address, e.g. 127.0.0.1:6060, for diagnosing performance; off when empty. Profiles show the server's internals: loopback only, never through a proxy")
	fs.StringVar(&c.CAKeyType, "ca-key-type", c.CAKeyType, "key type of the certificate authority's root and intermediate when the server creates them (first start; an existing CA keeps its keys, hallmark ca rotate --key-type changes them): ecdsa-p256 or ecdsa-p384 (the public-good Fulcio's; every verification of a keyless signature then costs ~10x more CPU)")
	fs.IntVar(&c.IndexWorkers, "index-workers", c.IndexWorkers, "signature indexing workers on this replica (0: two per CPU; -1: none, other replicas index)")
	fs.StringVar(&c.Auth, "auth", c.Auth, "registry access control: on (token auth, users, projects, CI job tokens), token (tokens of an external token service such as GitLab's /jwt/auth: --token-realm, --token-service, --token-issuer, --token-cert) or off (anyone may push and pull; refused on a non-loopback address)")
	fs.StringVar(&c.TokenRealm, "token-realm", c.TokenRealm, "with --auth=token: the external token service's endpoint clients are sent to (GitLab: https://gitlab.example.com/jwt/auth)")
	fs.StringVar(&c.TokenService, "token-service", c.TokenService, "with --auth=token: the service name in the challenge and the aud its tokens must carry (GitLab: container_registry)")
	fs.StringVar(&c.TokenIssuer, "token-issuer", c.TokenIssuer, "with --auth=token: the iss its tokens must carry (GitLab: its registry issuer, e.g. gitlab-issuer)")
	fs.StringVar(&c.TokenCert, "token-cert", c.TokenCert, "with --auth=token: PEM file of the certificates and/or public keys that sign its tokens (GitLab: the certificate of its registry key); a token's kid names one (JWK thumbprint or libtrust key ID) or its x5c chain leads to one")
	fs.StringVar(&c.TLSCert, "tls-cert", c.TLSCert, "PEM certificate (chain) file; with --tls-key the server speaks HTTPS")
	fs.StringVar(&c.TLSKey, "tls-key", c.TLSKey, "PEM private key file for --tls-cert")
	fs.BoolVar(&c.InsecureHTTP, "insecure-http", c.InsecureHTTP, "serve plain HTTP on a non-loopback address (only behind a TLS-terminating proxy: credentials and tokens would otherwise cross the network in clear text)")
	fs.StringSliceVar(&c.TrustedProxies, "trusted-proxy", c.TrustedProxies, "address or CIDR prefix of a reverse proxy in front of the server (repeatable): from these peers X-Forwarded-For (its right-most address that is not a trusted proxy) or X-Real-IP names the client, for failed-login throttling and the audit log; from any other peer those headers are ignored")
	fs.BoolVar(&c.OIDCBuiltin, "oidc-builtin", c.OIDCBuiltin, "run the built-in OIDC issuer for CI jobs (issuer URL = --external-url)")
	fs.Var(&oidcIssuersValue{p: &c.OIDCIssuers}, "oidc-issuer", "trusted external OIDC issuer, as url=URL[,type=gitlab-pipeline|email|generic][,subject-claim=CLAIM][,ca-cert=PEM-FILE] (repeatable; type defaults to gitlab-pipeline; several in one value or env var: each url= starts a new issuer)")
	fs.DurationVar(&c.OIDCTokenTTL, "oidc-token-ttl", c.OIDCTokenTTL, "default lifetime of CI job ID tokens minted by the built-in issuer")
	fs.DurationVar(&c.OIDCMaxTokenTTL, "oidc-max-token-ttl", c.OIDCMaxTokenTTL, "longest lifetime a minted token may ask for; a rotated-out key stays published this long (plus 5m)")
	fs.DurationVar(&c.OIDCKeyRotation, "oidc-key-rotation", c.OIDCKeyRotation, "rotate the built-in issuer's signing key when it is older than this (e.g. 720h); 0 = only on request (hallmark token rotate-key)")
	fs.DurationVar(&c.TUFTimestampExpiry, "tuf-timestamp-expiry", c.TUFTimestampExpiry, "lifetime of the TUF repository's timestamp metadata (/tuf/timestamp.json); the server re-signs it when half has passed, and clients refuse the repository once it expires while the server is down (2s to 336h)")
	fs.DurationVar(&c.GCInterval, "gc-interval", c.GCInterval, "time between garbage collection sweeps (blobs no manifest references, untagged manifests if enabled, projects' retention policies); 0 disables the worker (hallmark gc runs a sweep by hand)")
	fs.DurationVar(&c.GCGrace, "gc-grace", c.GCGrace, "how long garbage collection leaves a blob or manifest after it became unreferenced (uploaded and not yet referenced, untagged, its manifest deleted); longer than the longest push and the longest backup (at least 1s)")
	fs.BoolVar(&c.GCUntaggedManifests, "gc-untagged-manifests", c.GCUntaggedManifests, "garbage collection also deletes manifests that no tag, no index and no subject in their repository keep (with their signatures); tags removed by retention policies then free storage")
	fs.DurationVar(&c.OIDCJWKSCacheTTL, "oidc-jwks-cache-ttl", c.OIDCJWKSCacheTTL, "how long an external issuer's discovery document and JWKS are cached (an unknown kid refetches sooner)")
}

// Apply fills every flag of fs that was not set on the command line from
// its HALLMARK_* environment variable, else from the YAML file at path
// (skipped when path is empty). Unknown file keys are an error, so a typo
// does not silently fall back to a default.
func Apply(fs *pflag.FlagSet, path string, lookup func(string) (string, bool)) error {
	file := map[string]any{}
	if path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("config file: %w", err)
		}
		if err := yaml.Unmarshal(raw, &file); err != nil {
			return fmt.Errorf("config file %s: not valid YAML: %w", path, err)
		}
		for k := range file {
			if f := fs.Lookup(k); f == nil || k == "config" {
				return fmt.Errorf("config file %s: unknown key %q (keys are the flag names, e.g. addr, data-dir)", path, k)
			}
		}
	}
	fileValue := func(name string) (string, bool) {
		v, ok := file[name]
		if !ok {
			return "", false
		}
		if list, isList := v.([]any); isList {
			return yamlList(list), true
		}
		return fmt.Sprint(v), true
	}
	return ApplyEnv(fs, "HALLMARK_", lookup, fileValue)
}

// ApplyEnv sets every flag of fs not given on the command line from the
// environment variable prefix+FLAG_NAME (upper case, '-' as '_'), else from
// fallback (may be nil). cosign-compatible commands use the prefix COSIGN_.
func ApplyEnv(fs *pflag.FlagSet, prefix string, lookup, fallback func(string) (string, bool)) error {
	var errs []error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || f.Name == "config" || f.Name == "help" {
			return
		}
		env := prefix + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		v, ok := lookup(env)
		src := env
		if !ok && fallback != nil {
			v, ok = fallback(f.Name)
			src = "config file key " + f.Name
		}
		if !ok {
			return
		}
		if err := setFlag(f, v); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", src, v, err))
		}
	})
	return errors.Join(errs...)
}

// setFlag sets f from a string; for slice flags a value replaces the default.
func setFlag(f *pflag.Flag, v string) error {
	if sv, ok := f.Value.(pflag.SliceValue); ok {
		if v == "" {
			return sv.Replace(nil)
		}
		return sv.Replace(strings.Split(v, ","))
	}
	return f.Value.Set(v)
}

// Validate checks the configuration and says what to fix.
func (c *Server) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("addr %q is not host:port: %w", c.Addr, err))
	}
	if c.ExternalURL != "" {
		if u, err := url.Parse(c.ExternalURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			errs = append(errs, fmt.Errorf("external-url %q: want http(s)://host[:port] with no path", c.ExternalURL))
		}
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data-dir is empty"))
	}
	if err := ValidateDatabaseURL(c.DatabaseURL); err != nil {
		errs = append(errs, err)
	}
	hasKEK := c.KeyEncryptionKeyFile != "" || c.KeyEncryptionKey != ""
	switch {
	case c.DatabaseURL != "" && !hasKEK:
		errs = append(errs, errors.New("database-url keeps the server's keys in the database, encrypted: give key-encryption-key-file FILE or env HALLMARK_KEY_ENCRYPTION_KEY, the same on every replica (make one with: openssl rand -base64 32)"))
	case c.DatabaseURL == "" && hasKEK:
		errs = append(errs, errors.New("key-encryption-key-file / HALLMARK_KEY_ENCRYPTION_KEY is only used with database-url (without it the keys are files in <data-dir>/keys)"))
	case c.KeyEncryptionKeyFile != "" && c.KeyEncryptionKey != "":
		errs = append(errs, errors.New("give the key encryption key once: key-encryption-key-file or env HALLMARK_KEY_ENCRYPTION_KEY, not both"))
	}
	if c.BlobURL != "" && !strings.HasPrefix(c.BlobURL, "s3://") {
		errs = append(errs, errors.New("blob-url: want s3://bucket/prefix?endpoint=...&region=..., or leave it empty for the filesystem under data-dir"))
	}
	if c.BlobRedirect && c.BlobURL == "" {
		errs = append(errs, errors.New("blob-redirect needs an S3 blob-url (filesystem blobs are served by the registry)"))
	}
	switch n, err := c.BlobCacheBytes(); {
	case err != nil:
		errs = append(errs, err)
	case n > 0 && c.BlobURL == "":
		errs = append(errs, errors.New("blob-cache-size keeps S3 blobs on the local disk: it needs an S3 blob-url (filesystem blobs are local already)"))
	case n > 0 && c.BlobRedirect:
		errs = append(errs, errors.New("blob-cache-size and blob-redirect exclude each other: with redirects the blobs do not pass through the server, so there is nothing to keep"))
	}
	if c.DebugAddr != "" {
		if host, _, err := net.SplitHostPort(c.DebugAddr); err != nil {
			errs = append(errs, fmt.Errorf("debug-addr %q is not host:port: %w", c.DebugAddr, err))
		} else if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			errs = append(errs, fmt.Errorf("debug-addr %q: the profiler shows the server's internals; give a loopback address such as 127.0.0.1:6060", c.DebugAddr))
		}
	}
	switch c.CAKeyType {
	case "ecdsa-p256", "ecdsa-p384":
	default:
		errs = append(errs, fmt.Errorf("ca-key-type %q: use ecdsa-p256 or ecdsa-p384", c.CAKeyType))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log-level %q: use debug, info, warn or error", c.LogLevel))
	}
	switch c.LogFormat {
	case "json", "text":
	default:
		errs = append(errs, fmt.Errorf("log-format %q: use json or text", c.LogFormat))
	}
	if c.MaxManifestSize < 4<<20 {
		errs = append(errs, fmt.Errorf("max-manifest-size %d is below the 4 MiB the OCI spec asks registries to accept", c.MaxManifestSize))
	}
	if c.UploadTTL <= 0 {
		errs = append(errs, errors.New("upload-ttl must be positive"))
	}
	if c.SessionIdleTimeout < time.Minute || c.SessionIdleTimeout > 12*time.Hour {
		errs = append(errs, fmt.Errorf("session-idle-timeout %v: use 1m to 12h", c.SessionIdleTimeout))
	}
	if c.BodyReadTimeout <= 0 {
		errs = append(errs, errors.New("body-read-timeout must be positive (e.g. 30s): without it a client sending a byte at a time holds a connection and its buffered body forever"))
	}
	if c.GCInterval < 0 {
		errs = append(errs, errors.New("gc-interval must be 0 (no worker) or positive"))
	}
	if c.GCGrace < time.Second {
		errs = append(errs, fmt.Errorf("gc-grace %v: use at least 1s (the default 24h covers slow pushes and backups)", c.GCGrace))
	}
	if c.TUFTimestampExpiry < 2*time.Second || c.TUFTimestampExpiry > 14*24*time.Hour {
		errs = append(errs, fmt.Errorf("tuf-timestamp-expiry %v: use 2s to 336h (at most the snapshot's 14 days)", c.TUFTimestampExpiry))
	}
	errs = append(errs, c.validateOIDC()...)
	errs = append(errs, c.validateAccess()...)
	return errors.Join(errs...)
}

// validateAccess checks --auth, TLS and the listen address together: an
// open registry, or credentials in clear text, must not reach the network.
func (c *Server) validateAccess() []error {
	var errs []error
	loopback := IsLoopback(c.Addr)
	switch c.Auth {
	case "on":
	case "token":
		errs = append(errs, c.validateTokenService()...)
	case "off":
		if !loopback {
			errs = append(errs, fmt.Errorf("auth=off on %s: an open registry (anyone may push, overwrite and delete) is only allowed on a loopback address such as 127.0.0.1:5000; turn auth on or listen on loopback", c.Addr))
		}
	default:
		errs = append(errs, fmt.Errorf("auth %q: use on, token or off", c.Auth))
	}
	if c.Auth != "token" && (c.TokenRealm != "" || c.TokenService != "" || c.TokenIssuer != "" || c.TokenCert != "") {
		errs = append(errs, fmt.Errorf("token-realm, token-service, token-issuer and token-cert configure an external token service and need auth=token (auth is %q)", c.Auth))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("tls-cert and tls-key must be given together"))
	}
	if c.TLSCert == "" && !loopback && !c.InsecureHTTP {
		errs = append(errs, fmt.Errorf("refusing plain HTTP on the non-loopback address %s: passwords, CI job tokens and access tokens would cross the network in clear text; give --tls-cert and --tls-key, or --insecure-http if a TLS-terminating proxy is in front", c.Addr))
	}
	return errs
}

// validateTokenService checks the external token service settings of
// auth=token: all four are required; the realm, where clients send their
// passwords and job tokens, must be https (http only on a loopback host).
func (c *Server) validateTokenService() []error {
	var errs []error
	for _, f := range []struct{ name, v string }{{"token-realm", c.TokenRealm}, {"token-service", c.TokenService},
		{"token-issuer", c.TokenIssuer}, {"token-cert", c.TokenCert}} {
		if f.v == "" {
			errs = append(errs, fmt.Errorf("auth=token needs %s (the external token service: --token-realm URL, --token-service NAME, --token-issuer NAME, --token-cert PEM-FILE; GitLab: https://gitlab.example.com/jwt/auth, container_registry, its registry issuer, its registry certificate)", f.name))
		}
	}
	if c.TokenRealm != "" {
		u, err := url.Parse(c.TokenRealm)
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			errs = append(errs, fmt.Errorf("token-realm %q: want an http(s) URL such as https://gitlab.example.com/jwt/auth", c.TokenRealm))
		case u.Scheme == "http" && !IsLoopback(net.JoinHostPort(u.Hostname(), "0")):
			errs = append(errs, fmt.Errorf("token-realm %q: clients send their credentials there, so it must be https (plain http only for a loopback host)", c.TokenRealm))
		}
	}
	return errs
}

// IsLoopback reports whether the host of the listen address addr is a
// loopback address (127.0.0.0/8, ::1 or localhost). An empty host (all
// interfaces) is not.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

const databaseURLHelp = "want postgres://user:password@host:port/database (or empty for SQLite in --data-dir)"

// ValidateDatabaseURL checks --database-url: empty (SQLite in the data
// dir) or a postgres:// / postgresql:// URL. The error never repeats the
// URL, which may hold a password.
func ValidateDatabaseURL(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("database-url is not a valid URL: " + databaseURLHelp)
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return fmt.Errorf("database-url: scheme %q is not supported: %s", truncate(u.Scheme, 20), databaseURLHelp)
	}
	if u.Opaque != "" {
		return errors.New("database-url: missing // after the scheme: " + databaseURLHelp)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
