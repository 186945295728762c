package ca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/hallmark-dev/hallmark/internal/keystore"
)

// Key and certificate names in the key store.
const (
	rootKeyName          = "ca-root"
	intermediateKeyName  = "ca-intermediate"
	rootCertName         = "ca-root-cert"         // item ca-root-cert.pem (<keys>/ca-root-cert.pem)
	intermediateCertName = "ca-intermediate-cert" // item ca-intermediate-cert.pem
	ctLogKeyName         = "ctlog"
)

// caValidity is the lifetime of a newly created root and intermediate.
const caValidity = 10 * 365 * 24 * time.Hour

// KeyTypes are the names ParseKeyType accepts, the default first.
var KeyTypes = []string{"ecdsa-p256", "ecdsa-p384"}

// ParseKeyType maps a CA key type name to its key kind: "ecdsa-p256"
// (also ""; the default) or "ecdsa-p384" (what the public-good Fulcio
// uses). Every signature a client or the index verifies checks one
// certificate signed by the intermediate; Go verifies P-256 about ten
// times faster than P-384, and both are accepted by every sigstore
// client.
func ParseKeyType(s string) (keystore.Kind, error) {
	switch s {
	case "", "ecdsa-p256":
		return keystore.ECDSAP256, nil
	case "ecdsa-p384":
		return keystore.ECDSAP384, nil
	}
	return 0, fmt.Errorf("ca: key type %q: use %s", s, strings.Join(KeyTypes, " or "))
}

// hierarchy is the CA's root and intermediate with the intermediate's key.
type hierarchy struct {
	root, intermediate *x509.Certificate
	key                crypto.Signer // intermediate's private key
}

// hierarchyNames are the key and certificate names of one CA
// generation, and the label its certificates' common names carry.
type hierarchyNames struct {
	rootKey, interKey, rootCert, interCert string
	label                                  string // "" for generation 1, " 2" for generation 2, ...
}

// generationNames: generation 1 keeps the original names (ca-root, ...);
// generation n > 1 appends "-n" (ca-root-2, ...).
func generationNames(n int) hierarchyNames {
	if n <= 1 {
		return hierarchyNames{rootKeyName, intermediateKeyName, rootCertName, intermediateCertName, ""}
	}
	sfx := fmt.Sprintf("-%d", n)
	return hierarchyNames{rootKeyName + sfx, intermediateKeyName + sfx, rootCertName + sfx, intermediateCertName + sfx, fmt.Sprintf(" %d", n)}
}

// loadOrCreateHierarchy returns the root and intermediate kept in ks under
// nm, creating keys and certificates if they do not exist yet. Existing
// ones are checked (certificate matches key, intermediate chains to root)
// and never replaced: that would change what every client trusts.
func loadOrCreateHierarchy(ctx context.Context, ks keystore.Store, nm hierarchyNames, org string, kind keystore.Kind, now time.Time) (*hierarchy, error) {
	rootKey, err := keystore.LoadOrCreate(ctx, ks, nm.rootKey, kind)
	if err != nil {
		return nil, fmt.Errorf("ca: root key: %w", err)
	}
	interKey, err := keystore.LoadOrCreate(ctx, ks, nm.interKey, kind)
	if err != nil {
		return nil, fmt.Errorf("ca: intermediate key: %w", err)
	}
	root, err := loadOrCreateCert(ctx, ks, nm.rootCert, nm.rootKey, rootKey, func() (*x509.Certificate, error) {
		tmpl, err := caTemplate(pkix.Name{Organization: []string{org}, CommonName: org + " root" + nm.label}, rootKey.Public(), now)
		if err != nil {
			return nil, err
		}
		return sign(tmpl, tmpl, rootKey.Public(), rootKey)
	})
	if err != nil {
		return nil, err
	}
	inter, err := loadOrCreateCert(ctx, ks, nm.interCert, nm.interKey, interKey, func() (*x509.Certificate, error) {
		tmpl, err := caTemplate(pkix.Name{Organization: []string{org}, CommonName: org + " intermediate" + nm.label}, interKey.Public(), now)
		if err != nil {
			return nil, err
		}
		tmpl.MaxPathLen, tmpl.MaxPathLenZero = 0, true
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}
		if tmpl.NotAfter.After(root.NotAfter) {
			tmpl.NotAfter = root.NotAfter
		}
		return sign(tmpl, root, interKey.Public(), rootKey)
	})
	if err != nil {
		return nil, err
	}
	if !root.IsCA || !inter.IsCA {
		return nil, errors.New("ca: stored root or intermediate certificate is not a CA certificate")
	}
	if err := inter.CheckSignatureFrom(root); err != nil {
		return nil, fmt.Errorf("ca: stored intermediate %s is not signed by the stored root %s: %w", ks.Where(keystore.KeyItem(nm.interCert)), ks.Where(keystore.KeyItem(nm.rootCert)), err)
	}
	return &hierarchy{root: root, intermediate: inter, key: interKey}, nil
}

// loadOrCreateCert reads the certificate name from ks, or creates it with
// create and stores it (another process storing one first wins). The
// certificate's key must be key's.
func loadOrCreateCert(ctx context.Context, ks keystore.Store, name, keyName string, key crypto.Signer, create func() (*x509.Certificate, error)) (*x509.Certificate, error) {
	item := keystore.KeyItem(name)
	it, err := keystore.LoadOrCreateItem(ctx, ks, item, func() ([]byte, error) {
		cert, err := create()
		if err != nil {
			return nil, fmt.Errorf("ca: create %s: %w", name, err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), nil
	})
	if err != nil {
		return nil, fmt.Errorf("ca: %s: %w", name, err)
	}
	where := ks.Where(item)
	b, _ := pem.Decode(it.Data)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("ca: %s holds no PEM CERTIFICATE; restore it from a backup (deleting it creates a new CA that clients do not trust)", where)
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("ca: parse %s: %w", where, err)
	}
	if !samePublicKey(cert.PublicKey, key.Public()) {
		return nil, fmt.Errorf("ca: %s does not belong to the key %s; restore the matching pair from a backup", where, ks.Where(keystore.KeyItem(keyName)))
	}
	return cert, nil
}

func samePublicKey(a, b crypto.PublicKey) bool {
	ea, err1 := x509.MarshalPKIXPublicKey(a)
	eb, err2 := x509.MarshalPKIXPublicKey(b)
	return err1 == nil && err2 == nil && bytes.Equal(ea, eb)
}

func caTemplate(subject pkix.Name, pub crypto.PublicKey, now time.Time) (*x509.Certificate, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	ski, err := subjectKeyID(pub)
	if err != nil {
		return nil, err
	}
	return &x509.Certificate{
		SerialNumber:          serial,
		Subject:               subject,
		NotBefore:             now.Add(-time.Minute).UTC(),
		NotAfter:              now.Add(caValidity).UTC(),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		SubjectKeyId:          ski,
	}, nil
}

func sign(tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) (*x509.Certificate, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// randomSerial returns a random positive serial number of at most 159 bits
// (RFC 5280: at most 20 octets, positive).
func randomSerial() (*big.Int, error) {
	max := new(big.Int).Lsh(big.NewInt(1), 159)
	n, err := rand.Int(rand.Reader, max)
	if err != nil {
		return nil, fmt.Errorf("ca: serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

// subjectKeyID is RFC 5280 method 1: SHA-1 of the subjectPublicKey bits.
func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("ca: marshal public key: %w", err)
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		return nil, fmt.Errorf("ca: parse public key: %w", err)
	}
	sum := sha1.Sum(spki.PublicKey.Bytes)
	return sum[:], nil
}
