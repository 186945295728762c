package tlog_test

// Independent verification with the sigstore ecosystem's own code (test
// dependencies only): Rekor's generated Go client (what cosign uses), Rekor's
// entry types and verify package, and sigstore-go's signer and verifier.

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-openapi/runtime"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	rekorclient "github.com/sigstore/rekor/pkg/client"
	genclient "github.com/sigstore/rekor/pkg/generated/client"
	"github.com/sigstore/rekor/pkg/generated/client/entries"
	"github.com/sigstore/rekor/pkg/generated/client/pubkey"
	rekortlog "github.com/sigstore/rekor/pkg/generated/client/tlog"
	"github.com/sigstore/rekor/pkg/generated/models"
	"github.com/sigstore/rekor/pkg/tle"
	"github.com/sigstore/rekor/pkg/types"
	rekordsse "github.com/sigstore/rekor/pkg/types/dsse"
	rekorhashedrekord "github.com/sigstore/rekor/pkg/types/hashedrekord"
	rekorutil "github.com/sigstore/rekor/pkg/util"
	rekorverify "github.com/sigstore/rekor/pkg/verify"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"google.golang.org/protobuf/proto"

	// Register the entry types with Rekor's type registry.
	_ "github.com/sigstore/rekor/pkg/types/dsse/v0.0.1"
	_ "github.com/sigstore/rekor/pkg/types/hashedrekord/v0.0.1"

	"github.com/hallmark-dev/hallmark/internal/tlog"
	"github.com/hallmark-dev/hallmark/pkg/payload"
	"github.com/hallmark-dev/hallmark/pkg/rekor"
	"github.com/hallmark-dev/hallmark/pkg/rekor/rekortest"
)

// rekorCanonical is what Rekor itself stores for a proposed entry.
func rekorCanonical(t *testing.T, raw []byte) []byte {
	t.Helper()
	pe, err := models.UnmarshalProposedEntry(bytes.NewReader(raw), runtime.JSONConsumer())
	if err != nil {
		t.Fatalf("rekor cannot parse the proposed entry: %v", err)
	}
	ei, err := types.CreateVersionedEntry(pe)
	if err != nil {
		t.Fatalf("rekor rejects the entry: %v", err)
	}
	b, err := types.CanonicalizeEntry(context.Background(), ei)
	if err != nil {
		t.Fatalf("rekor cannot canonicalize: %v", err)
	}
	return b
}

// Differential test: for entries of every accepted shape, the stored body is
// byte for byte what Rekor's own type code produces.
func TestCanonicalBodyMatchesRekor(t *testing.T) {
	p256 := rekortest.NewKey(t)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, ed := mustEd25519(t)
	rootKey := rekortest.NewKey(t)
	rootCert, rootPEM := rekortest.Cert(t, rootKey, nil, nil, true)
	_, leafPEM := rekortest.Cert(t, p256, rootCert, rootKey, false)
	_, selfPEM := rekortest.Cert(t, p384, nil, nil, false)
	hr := func(k crypto.Signer, keyPEM []byte) []byte {
		alg, d, sig := rekortest.SignDigest(t, k, []byte("artifact"))
		return rekortest.HashedRekord(alg, d, sig, keyPEM)
	}
	stmt := []byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"a","digest":{"sha256":"abcd"}}],"predicateType":"x","predicate":{"<&>":"é"}}`)
	cases := map[string][]byte{
		"hashedrekord ecdsa key":   hr(p256, rekortest.PublicKeyPEM(t, p256.Public())),
		"hashedrekord p384 cert":   hr(p384, selfPEM),
		"hashedrekord rsa key":     hr(rsaKey, rekortest.PublicKeyPEM(t, rsaKey.Public())),
		"hashedrekord ed25519ph":   hr(ed, rekortest.PublicKeyPEM(t, ed.Public())),
		"hashedrekord chain":       hr(p256, append(append([]byte{}, leafPEM...), rootPEM...)),
		"dsse one signature":       rekortest.DSSEEntry(rekortest.SignEnvelope(t, stmt, p256), rekortest.PublicKeyPEM(t, p256.Public())),
		"dsse two signatures":      rekortest.DSSEEntry(rekortest.SignEnvelope(t, stmt, p256, p384), selfPEM, rekortest.PublicKeyPEM(t, p256.Public())),
		"dsse ed25519 and rsa":     rekortest.DSSEEntry(rekortest.SignEnvelope(t, stmt, ed, rsaKey), rekortest.PublicKeyPEM(t, rsaKey.Public()), rekortest.PublicKeyPEM(t, ed.Public())),
		"dsse certificate chain":   rekortest.DSSEEntry(rekortest.SignEnvelope(t, stmt, p256), append(append([]byte{}, leafPEM...), rootPEM...)),
		"dsse html characters env": rekortest.DSSEEntry(strings.Replace(rekortest.SignEnvelope(t, stmt, p256), `"payloadType"`, ` "payloadType"`, 1), rekortest.PublicKeyPEM(t, p256.Public())),
	}
	for name, raw := range cases {
		t.Run(name, func(t *testing.T) {
			c, err := rekor.Canonicalize(raw)
			if err != nil {
				t.Fatal(err)
			}
			if want := rekorCanonical(t, raw); !bytes.Equal(c.Body, want) {
				t.Fatalf("canonical body differs from Rekor's\n ours: %s\nrekor: %s", c.Body, want)
			}
		})
	}
}

// A real entry from the public-good Rekor (sigstore-go's testdata): the
// proposed form of its canonical body canonicalizes to the very same bytes.
func TestRealRekorEntryRoundTrips(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "othername.sigstore.json"))
	if err != nil {
		t.Fatal(err)
	}
	var b struct {
		VerificationMaterial struct {
			TlogEntries []struct {
				CanonicalizedBody string `json:"canonicalizedBody"`
			} `json:"tlogEntries"`
		} `json:"verificationMaterial"`
	}
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatal(err)
	}
	body, _ := base64.StdEncoding.DecodeString(b.VerificationMaterial.TlogEntries[0].CanonicalizedBody)
	c, err := rekor.Canonicalize(body)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c.Body, body) {
		t.Fatalf("real Rekor body not reproduced:\n got %s\nwant %s", c.Body, body)
	}
	if got := hex.EncodeToString(c.LeafHash[:]); got != "d18a0b811c7277620ff2f259b9f868681a60784b9e1acfca1e1e560cee6a6e06" {
		t.Fatalf("leaf hash %s is not the public entry's UUID", got)
	}
}

func rekorClient(t *testing.T, url string) *genclient.Rekor {
	t.Helper()
	rc, err := rekorclient.GetRekorClient(url, rekorclient.WithRetryCount(0))
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

// What cosign does: create with Rekor's client, handle 409, fetch by UUID,
// search, and verify each entry offline with Rekor's verify package (SET,
// inclusion proof, checkpoint signature) using the served public key.
func TestRekorClientAsCosign(t *testing.T) {
	ctx := context.Background()
	env := newAPI(t, 0)
	rc := rekorClient(t, env.srv.URL)

	pk, err := rc.Pubkey.GetPublicKey(pubkey.NewGetPublicKeyParamsWithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	logPub, err := cryptoutils.UnmarshalPEMToPublicKey([]byte(pk.Payload))
	if err != nil {
		t.Fatal(err)
	}
	logVerifier, err := signature.LoadVerifier(logPub, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}

	k := rekortest.NewKey(t)
	raw := rekortest.SignedEntry(t, k, []byte("cosign style"))
	pe, err := models.UnmarshalProposedEntry(bytes.NewReader(raw), runtime.JSONConsumer())
	if err != nil {
		t.Fatal(err)
	}
	params := entries.NewCreateLogEntryParamsWithContext(ctx)
	params.SetProposedEntry(pe)
	created, err := rc.Entries.CreateLogEntry(params)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	entry, ok := created.Payload[created.ETag]
	if !ok {
		t.Fatalf("ETag %q is not a key of the response", created.ETag)
	}
	if err := rekorverify.VerifyLogEntry(ctx, &entry, logVerifier); err != nil {
		t.Fatalf("rekor verify of the created entry: %v", err)
	}
	if created.Location.String() != env.srv.URL+"/api/v1/log/entries/"+created.ETag {
		t.Fatalf("Location %s", created.Location)
	}

	// 409: cosign takes the UUID from Location and fetches the entry.
	_, err = rc.Entries.CreateLogEntry(params)
	var conflict *entries.CreateLogEntryConflict
	if !errors.As(err, &conflict) {
		t.Fatalf("duplicate: %v", err)
	}
	uuid := conflict.Location.String()[strings.LastIndex(conflict.Location.String(), "/")+1:]
	if uuid != created.ETag {
		t.Fatalf("409 Location names %s, want %s", uuid, created.ETag)
	}
	got, err := rc.Entries.GetLogEntryByUUID(entries.NewGetLogEntryByUUIDParamsWithContext(ctx).WithEntryUUID(uuid))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range got.Payload {
		if err := rekorverify.VerifyLogEntry(ctx, &e, logVerifier); err != nil {
			t.Fatalf("rekor verify of the fetched entry: %v", err)
		}
	}

	// cosign verify without a bundle: search by the proposed entry.
	sq := entries.NewSearchLogQueryParamsWithContext(ctx)
	q := &models.SearchLogQuery{}
	q.SetEntries([]models.ProposedEntry{pe})
	sq.SetEntry(q)
	found, err := rc.Entries.SearchLogQuery(sq)
	if err != nil {
		t.Fatal(err)
	}
	if len(found.Payload) != 1 {
		t.Fatalf("search found %d entries", len(found.Payload))
	}
	for _, e := range found.Payload[0] {
		if err := rekorverify.VerifyLogEntry(ctx, &e, logVerifier); err != nil {
			t.Fatalf("rekor verify of the searched entry: %v", err)
		}
	}

	// Log info and consistency as a monitor checks them.
	info, err := rc.Tlog.GetLogInfo(rekortlog.NewGetLogInfoParamsWithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	var sth rekorutil.SignedCheckpoint
	if err := sth.UnmarshalText([]byte(*info.Payload.SignedTreeHead)); err != nil {
		t.Fatal(err)
	}
	if !sth.Verify(logVerifier) {
		t.Fatal("rekor cannot verify the signed tree head")
	}
	for i := 0; i < 5; i++ {
		created, err := rc.Entries.CreateLogEntry(entries.NewCreateLogEntryParamsWithContext(ctx).WithProposedEntry(mustProposed(t, rekortest.SignedEntry(t, k, []byte{byte(i)}))))
		if err != nil {
			t.Fatal(err)
		}
		e := created.Payload[created.ETag]
		if err := rekorverify.VerifyLogEntry(ctx, &e, logVerifier); err != nil {
			t.Fatal(err)
		}
	}
	newer, err := rekorverify.VerifyCurrentCheckpoint(ctx, rc, logVerifier, &sth)
	if err != nil {
		t.Fatalf("rekor consistency check from size %d: %v", sth.Size, err)
	}
	if newer.Size != 6 || newer.Origin != env.Origin() {
		t.Fatalf("current checkpoint %d %q", newer.Size, newer.Origin)
	}
}

func mustProposed(t *testing.T, raw []byte) models.ProposedEntry {
	t.Helper()
	pe, err := models.UnmarshalProposedEntry(bytes.NewReader(raw), runtime.JSONConsumer())
	if err != nil {
		t.Fatal(err)
	}
	return pe
}

// trustedMaterial is a sigstore-go trusted root holding this log, plus the
// signer's public key under hint.
func trustedMaterial(t *testing.T, env *apiEnv, logKey crypto.PublicKey, hint string, signer crypto.PublicKey) root.TrustedMaterial {
	t.Helper()
	id := env.LogID()
	tr, err := root.NewTrustedRoot(root.TrustedRootMediaType01, nil, nil, nil, map[string]*root.TransparencyLog{
		hex.EncodeToString(id[:]): {
			BaseURL: env.srv.URL, ID: id[:], ValidityPeriodStart: env.CreatedAt(),
			HashFunc: crypto.SHA256, PublicKey: logKey, SignatureHashFunc: crypto.SHA256,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	v, err := signature.LoadVerifier(signer, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	keys := root.NewTrustedPublicKeyMaterialFromMapping(map[string]*root.ExpiringKey{hint: root.NewExpiringKey(v, time.Time{}, time.Time{})})
	return root.TrustedMaterialCollection{tr, keys}
}

// signThroughLog does what sigstore-go's signer does with a Rekor v1 log
// (its sign package itself cannot be built against this module's x/crypto):
// Rekor's own entry types build the proposed entry, Rekor's client posts
// it, the entry is taken by ETag and converted to the bundle's
// TransparencyLogEntry by Rekor's tle package.
func signThroughLog(t *testing.T, url, kind string, k *ecdsa.PrivateKey, artifact, stmt []byte) (*protobundle.Bundle, string) {
	t.Helper()
	ctx := context.Background()
	keyPEM := rekortest.PublicKeyPEM(t, k.Public())
	der, _ := x509.MarshalPKIXPublicKey(k.Public())
	hint := base64.StdEncoding.EncodeToString(sha256Sum(der))
	props := types.ArtifactProperties{PublicKeyBytes: [][]byte{keyPEM}}
	pb := &protobundle.Bundle{
		MediaType:            "application/vnd.dev.sigstore.bundle.v0.3+json",
		VerificationMaterial: &protobundle.VerificationMaterial{Content: &protobundle.VerificationMaterial_PublicKey{PublicKey: &protocommon.PublicKeyIdentifier{Hint: hint}}},
	}
	var pe models.ProposedEntry
	var err error
	switch kind {
	case "hashedrekord":
		digest := sha256Sum(artifact)
		sig, _ := ecdsa.SignASN1(rand.Reader, k, digest)
		props.PKIFormat, props.SignatureBytes, props.ArtifactHash = "x509", sig, rekorutil.PrefixSHA(hex.EncodeToString(digest))
		pe, err = rekorhashedrekord.New().CreateProposedEntry(ctx, "", props)
		pb.Content = &protobundle.Bundle_MessageSignature{MessageSignature: &protocommon.MessageSignature{
			MessageDigest: &protocommon.HashOutput{Algorithm: protocommon.HashAlgorithm_SHA2_256, Digest: digest}, Signature: sig}}
	case "dsse":
		const typ = "application/vnd.in-toto+json"
		sig, _ := ecdsa.SignASN1(rand.Reader, k, sha256Sum(payload.PAE(typ, stmt)))
		env := &protodsse.Envelope{Payload: stmt, PayloadType: typ, Signatures: []*protodsse.Signature{{Sig: sig}}}
		props.ArtifactBytes, _ = json.Marshal(env)
		pe, err = rekordsse.New().CreateProposedEntry(ctx, "", props)
		pb.Content = &protobundle.Bundle_DsseEnvelope{DsseEnvelope: env}
	}
	if err != nil {
		t.Fatal(err)
	}
	resp, err := rekorClient(t, url).Entries.CreateLogEntry(entries.NewCreateLogEntryParamsWithContext(ctx).WithProposedEntry(pe))
	if err != nil {
		t.Fatalf("create %s entry: %v", kind, err)
	}
	tle, err := tle.GenerateTransparencyLogEntry(resp.Payload[resp.ETag])
	if err != nil {
		t.Fatalf("rekor cannot convert the entry for a bundle: %v", err)
	}
	pb.VerificationMaterial.TlogEntries = []*protorekor.TransparencyLogEntry{tle}
	return pb, hint
}

// sigstore-go's verifier accepts bundles carrying this log's entries
// (hashedrekord for a message signature, dsse for an attestation) with only
// this log's key as trust: SET, inclusion proof, checkpoint and the
// entry-versus-bundle comparison; and rejects tampered ones.
func TestSigstoreGoVerifiesBundles(t *testing.T) {
	ctx := context.Background()
	env := newAPI(t, 0)
	artifact := []byte("hello sigstore-go")
	stmt := []byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"a","digest":{"sha256":"` +
		hex.EncodeToString(sha256Sum(artifact)) + `"}}],"predicateType":"https://slsa.dev/provenance/v1","predicate":{}}`)
	for _, kind := range []string{"hashedrekord", "dsse"} {
		t.Run(kind, func(t *testing.T) {
			k := rekortest.NewKey(t)
			pb, hint := signThroughLog(t, env.srv.URL, kind, k, artifact, stmt)
			if kv := pb.VerificationMaterial.TlogEntries[0].KindVersion; kv.Kind != kind || kv.Version != "0.0.1" {
				t.Fatalf("entry kind %s/%s", kv.Kind, kv.Version)
			}
			tm := trustedMaterial(t, env, &env.key.PublicKey, hint, k.Public())
			v, err := verify.NewVerifier(tm, verify.WithTransparencyLog(1), verify.WithIntegratedTimestamps(1))
			if err != nil {
				t.Fatal(err)
			}
			policy := verify.NewPolicy(verify.WithArtifact(bytes.NewReader(artifact)), verify.WithKey())
			b, err := bundle.NewBundle(pb)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := v.Verify(b, policy); err != nil {
				t.Fatalf("sigstore-go verification: %v", err)
			}

			// Tampered entry body (one byte of whitespace added).
			tampered := cloneBundle(t, pb)
			tle := tampered.VerificationMaterial.TlogEntries[0]
			tle.CanonicalizedBody = bytes.Replace(tle.CanonicalizedBody, []byte(`"apiVersion":"0.0.1"`), []byte(`"apiVersion":"0.0.1" `), 1)
			expectReject(t, v, tampered, policy, "tampered body")

			// SET made by another key (the same log ID claimed).
			forged := cloneBundle(t, pb)
			ft := forged.VerificationMaterial.TlogEntries[0]
			other := rekortest.NewKey(t)
			payload, _ := rekor.SETPayload(ft.CanonicalizedBody, ft.IntegratedTime, hex.EncodeToString(ft.LogId.KeyId), ft.LogIndex)
			ft.InclusionPromise.SignedEntryTimestamp, _ = ecdsa.SignASN1(rand.Reader, other, sha256Sum(payload))
			expectReject(t, v, forged, policy, "SET from another key")

			// Inclusion proof and checkpoint of another tree, signed by the
			// same key, so only the proof itself can give it away.
			otherLog := openTestLog(t, filepath.Join(t.TempDir(), "other.db"), env.key, tlog.Config{})
			for i := 0; i < 3; i++ {
				add(t, otherLog.Log, rekortest.SignedEntry(t, other, []byte{byte(i)}))
			}
			oe, err := otherLog.EntryByIndex(ctx, uint64(pb.VerificationMaterial.TlogEntries[0].LogIndex)%3)
			if err != nil {
				t.Fatal(err)
			}
			swapped := cloneBundle(t, pb)
			ip := swapped.VerificationMaterial.TlogEntries[0].InclusionProof
			ip.RootHash, ip.TreeSize, ip.Hashes = oe.Proof.RootHash[:], int64(oe.Proof.TreeSize), oe.Proof.Hashes
			ip.Checkpoint.Envelope = string(oe.Proof.Checkpoint)
			expectReject(t, v, swapped, policy, "inclusion proof for another tree")

			// A trusted root that holds another log key.
			v2, _ := verify.NewVerifier(trustedMaterial(t, env, &other.PublicKey, hint, k.Public()), verify.WithTransparencyLog(1), verify.WithIntegratedTimestamps(1))
			expectReject(t, v2, pb, policy, "untrusted log key")
		})
	}
}

func expectReject(t *testing.T, v *verify.Verifier, pb *bundleProto, policy verify.PolicyBuilder, what string) {
	t.Helper()
	b, err := bundle.NewBundle(pb)
	if err != nil {
		return // rejected while parsing: fine
	}
	if _, err := v.Verify(b, policy); err == nil {
		t.Fatalf("%s: sigstore-go accepted it", what)
	} else {
		t.Logf("%s rejected: %v", what, err)
	}
}

type bundleProto = protobundle.Bundle

func cloneBundle(t *testing.T, pb *protobundle.Bundle) *protobundle.Bundle {
	t.Helper()
	return proto.Clone(pb).(*protobundle.Bundle)
}

func sha256Sum(b []byte) []byte {
	d := sha256.Sum256(b)
	return d[:]
}
