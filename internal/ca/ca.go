package ca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hallmark-dev/hallmark/internal/keystore"
	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/internal/oidc"
	"github.com/hallmark-dev/hallmark/pkg/fulcio"
)

// TokenVerifier verifies an OIDC ID token for an audience; *oidc.Verifier
// satisfies it.
type TokenVerifier interface {
	Verify(ctx context.Context, raw, audience string) (*oidc.Token, error)
}

// LeafValidity is the lifetime of an issued certificate, as Fulcio's.
const LeafValidity = 10 * time.Minute

// Config configures the CA.
type Config struct {
	// Audience the token must carry; default "sigstore".
	Audience string
	// Organization names the root and intermediate; default "Hallmark".
	// Only used when the hierarchy is first created.
	Organization string
	// KeyType is the key type of a root and intermediate created now (on
	// first start); a stored CA keeps its keys whatever it says. The zero
	// value is ECDSA P-256 (ParseKeyType).
	KeyType keystore.Kind
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Records, when set, keeps what the CA saw for each certificate it
	// issues: the verified token's claims that the certificate cannot
	// carry (GitLab: pipeline_id, job_id, user_login, runner_id, ...). A
	// certificate is handed out only once recorded.
	Records Recorder
}

// Recorder keeps the CA's records of issued certificates; the metadata
// database (meta.Certificates) is one.
type Recorder interface {
	RecordCertificates(ctx context.Context, certs ...meta.IssuedCertificate) error
}

// CA is a certificate authority with its intermediate key, its chain and
// its CT log key. It is safe for concurrent use.
type CA struct {
	log      *slog.Logger
	verifier TokenVerifier
	cfg      Config
	h        *hierarchy
	gens     []Generation
	ct       *ctLog
}

// New loads the CA from the key store ks, creating the root, intermediate
// and CT log keys and certificates on first start.
func New(ctx context.Context, ks keystore.Store, verifier TokenVerifier, log *slog.Logger, cfg Config) (*CA, error) {
	if ks == nil || verifier == nil {
		return nil, errors.New("ca: a key store and a token verifier are required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Audience == "" {
		cfg.Audience = "sigstore"
	}
	if cfg.Organization == "" {
		cfg.Organization = "Hallmark"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	h, gens, err := loadGenerations(ctx, ks, cfg.Organization, cfg.KeyType, cfg.Now())
	if err != nil {
		return nil, err
	}
	ctKey, err := keystore.LoadOrCreate(ctx, ks, ctLogKeyName, keystore.ECDSAP256)
	if err != nil {
		return nil, fmt.Errorf("ca: CT log key: %w", err)
	}
	ctl, err := newCTLog(ctKey)
	if err != nil {
		return nil, err
	}
	return &CA{log: log, verifier: verifier, cfg: cfg, h: h, gens: gens, ct: ctl}, nil
}

// Generations lists the CA's hierarchies, oldest first; the last is the
// one it issues from (Chain). Clients must trust each older one for what
// it issued until its Until.
func (c *CA) Generations() []Generation { return c.gens }

// Chain returns the CA chain a client trusts: the intermediate, then the
// root (what Fulcio's trust bundle and sigstore trusted roots list).
func (c *CA) Chain() []*x509.Certificate {
	return []*x509.Certificate{c.h.intermediate, c.h.root}
}

// CTLogPublicKey is the public key of the built-in CT log, to be published
// in the trusted root (ctlogs) or handed to cosign via
// SIGSTORE_CT_LOG_PUBLIC_KEY_FILE.
func (c *CA) CTLogPublicKey() crypto.PublicKey { return c.ct.key.Public() }

// CTLogID is the CT log's ID: SHA-256 of its DER SubjectPublicKeyInfo.
func (c *CA) CTLogID() [32]byte { return c.ct.id }

// KeyRequest is the key to certify with its proof of possession: either a
// public key and a signature over the token's identity, or a CSR.
type KeyRequest struct {
	PublicKey []byte // PEM or DER PKIX
	Proof     []byte // signature over the challenge (email or sub)
	CSR       []byte // PEM or DER PKCS#10; when set, PublicKey and Proof are ignored
}

// Issued is a freshly issued certificate.
type Issued struct {
	Leaf  *x509.Certificate
	Chain []*x509.Certificate // intermediate, root
}

// Issue verifies the token and the proof of possession and issues a leaf
// certificate with an embedded SCT. Errors wrap the package's sentinels.
func (c *CA) Issue(ctx context.Context, rawToken string, kr KeyRequest) (*Issued, error) {
	if rawToken == "" {
		return nil, fmt.Errorf("%w: send it as \"Authorization: Bearer <token>\" (an ID token with aud %q)", ErrMissingToken, c.cfg.Audience)
	}
	tok, err := c.verifier.Verify(ctx, rawToken, c.cfg.Audience)
	if err != nil {
		if ctx.Err() != nil || errors.Is(err, oidc.ErrIssuerUnavailable) {
			return nil, fmt.Errorf("%w: %w", errUnavailable, err)
		}
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	p, err := PrincipalFromToken(tok)
	if err != nil {
		return nil, err
	}
	var pub crypto.PublicKey
	if len(kr.CSR) > 0 {
		if pub, err = ParseCSR(kr.CSR); err != nil {
			return nil, err
		}
	} else {
		if pub, err = ParsePublicKey(kr.PublicKey); err != nil {
			return nil, err
		}
		if err := CheckKey(pub); err != nil {
			return nil, err
		}
		if err := VerifyProof(pub, kr.Proof, p.Challenge); err != nil {
			// Fulcio checks CI tokens against sub, while clients sign a
			// verified email when the token has one: accept either claim
			// of this same token.
			if tok.Identity == "" || tok.Identity == p.Challenge || VerifyProof(pub, kr.Proof, tok.Identity) != nil {
				return nil, err
			}
		}
	}
	leaf, err := c.issue(pub, p)
	if err != nil {
		return nil, err
	}
	if c.cfg.Records != nil {
		rec, err := Record(leaf, tok)
		if err != nil {
			return nil, err
		}
		if err := c.cfg.Records.RecordCertificates(ctx, rec); err != nil {
			c.log.ErrorContext(ctx, "recording an issued certificate failed; not handing it out", "serial", leaf.SerialNumber.Text(16), "err", err)
			return nil, fmt.Errorf("%w: %w", errNotRecorded, err)
		}
	}
	c.log.InfoContext(ctx, "issued signing certificate", "identity", p.Subject.String(), "issuer", tok.Issuer,
		"serial", leaf.SerialNumber.Text(16), "not_after", leaf.NotAfter)
	return &Issued{Leaf: leaf, Chain: c.Chain()}, nil
}

// issue builds the leaf for pub and p: precertificate, SCT, final
// certificate (sigstore-server.md B3).
func (c *CA) issue(pub crypto.PublicKey, p *Principal) (*x509.Certificate, error) {
	now := c.cfg.Now().Truncate(time.Second)
	serial, err := randomSerial()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInternal, err)
	}
	ski, err := subjectKeyID(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidPublicKey, err)
	}
	exts, err := p.Extensions.Render()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		NotBefore:             now.UTC(),
		NotAfter:              now.Add(LeafValidity).UTC(),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		BasicConstraintsValid: true,
		SubjectKeyId:          ski,
		ExtraExtensions:       exts,
	}
	if err := applySubject(tmpl, p.Subject); err != nil {
		return nil, err
	}
	issuer := c.h.intermediate
	base := tmpl.ExtraExtensions

	// 1. Precertificate: the template plus the critical poison extension.
	tmpl.ExtraExtensions = append(append([]pkix.Extension(nil), base...), pkix.Extension{Id: oidCTPoison, Critical: true, Value: asn1NullBody})
	preDER, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, pub, c.h.key)
	if err != nil {
		return nil, fmt.Errorf("%w: sign precertificate: %v", ErrInternal, err)
	}
	pre, err := x509.ParseCertificate(preDER)
	if err != nil {
		return nil, fmt.Errorf("%w: parse precertificate: %v", ErrInternal, err)
	}
	tbs, err := precertTBS(pre.RawTBSCertificate)
	if err != nil {
		return nil, fmt.Errorf("%w: precertificate TBS: %v", ErrInternal, err)
	}
	// 2. SCT over the precertificate entry.
	sct, err := c.ct.signPrecert(tbs, issuer, c.cfg.Now())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInternal, err)
	}
	sctExt, err := sctListExtension(sct)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInternal, err)
	}
	// 3. Final certificate: the same template with the SCT list last.
	tmpl.ExtraExtensions = append(append([]pkix.Extension(nil), base...), pkix.Extension{Id: oidSCTList, Value: sctExt})
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, pub, c.h.key)
	if err != nil {
		return nil, fmt.Errorf("%w: sign certificate: %v", ErrInternal, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("%w: parse certificate: %v", ErrInternal, err)
	}
	// Verifiers rebuild the precertificate TBS by removing the SCT list;
	// it must be the bytes the SCT signs, or no client accepts the SCT.
	if got, err := finalTBSWithoutSCTs(leaf.RawTBSCertificate); err != nil || !bytes.Equal(got, tbs) {
		return nil, fmt.Errorf("%w: final certificate does not match its precertificate (%v)", ErrInternal, err)
	}
	return leaf, nil
}

// Record is what the CA keeps of leaf, issued for the verified token tok:
// the certificate's hash, serial, validity, issuer and identity, the
// token's project, all of its claims as JSON and the searchable ones
// (meta.SearchableClaims) as text.
func Record(leaf *x509.Certificate, tok *oidc.Token) (meta.IssuedCertificate, error) {
	claims, err := json.Marshal(tok.Claims)
	if err != nil {
		return meta.IssuedCertificate{}, fmt.Errorf("%w: the token's claims cannot be recorded: %v", ErrInternal, err)
	}
	sum := sha256.Sum256(leaf.Raw)
	subject, _ := fulcio.Identity(leaf)
	rec := meta.IssuedCertificate{SHA256: hex.EncodeToString(sum[:]), Serial: leaf.SerialNumber.Text(16), IssuedAt: leaf.NotBefore,
		NotAfter: leaf.NotAfter, Issuer: tok.Issuer, Subject: subject, Claims: claims, Searchable: map[string]string{}}
	rec.ProjectPath, _ = tok.StringClaim("project_path")
	for _, k := range meta.SearchableClaims {
		if v, ok := tok.StringClaim(k); ok && v != "" {
			rec.Searchable[k] = v
		}
	}
	return rec, nil
}
