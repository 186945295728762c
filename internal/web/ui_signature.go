package web

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/internal/tlog"
	"github.com/hallmark-dev/hallmark/pkg/bundle"
	"github.com/hallmark-dev/hallmark/pkg/fulcio"
	"github.com/hallmark-dev/hallmark/pkg/oci"
	"github.com/hallmark-dev/hallmark/pkg/payload"
	"github.com/hallmark-dev/hallmark/pkg/provenance"
	"github.com/hallmark-dev/hallmark/pkg/rekor"
	"github.com/hallmark-dev/hallmark/pkg/root"
	"github.com/hallmark-dev/hallmark/pkg/verify"
)

// Annotation marks: what the signing certificate says about a signed
// annotation.
const (
	markAttested     = "attested"      // the certificate carries the same value
	markSelfAsserted = "self-asserted" // the certificate says nothing about it
	markContradicted = "contradicted"  // the certificate carries another value
)

type annRow struct {
	Key, Value string
	Mark       string
	Attested   string // the certificate's value
	Extension  string // its name
}

type extRow struct {
	OID, Name, Value string
}

type certView struct {
	Identities []string
	Issuer     string // OIDC issuer
	CA         string // issuing certificate authority
	Serial     string
	NotBefore  time.Time
	NotAfter   time.Time
	Validity   string // at the logged time
	ValidAtLog bool
	Extensions []extRow
}

type entryView struct {
	Index      int64
	UUID       string
	Kind       string
	Integrated time.Time
	TreeSize   uint64
	Root       string
	Origin     string
	Checked    bool
	Bound      bool // the entry was matched to this signature
	Problem    string
}

type command struct{ Label, Text string }

type slsaView struct {
	PredicateType string
	BuildType     string
	Builder       string
	Sources       []kv
	Invocation    string
	EntryPoint    string
	Started       string
	Finished      string
}

type sigView struct {
	meta.Signature
	Attestation    bool
	PredicateType  string
	Legacy         bool // from the .att tag, not in the signature index
	Cert           *certView
	KeyBased       bool
	Marks          []annRow // the signed annotations with their marks
	Contradictions int
	Entry          *entryView
	SLSA           *slsaView
	Commands       []command
	Problem        string
}

// materials loads the signed material behind index records: signature
// manifests (cached per page) and blobs.
type materials struct {
	ui        *UI
	repo      string
	manifests map[digest.Digest]*oci.Manifest
}

func (mc *materials) manifest(ctx context.Context, ref string) (*oci.Manifest, digest.Digest, error) {
	if d, err := digest.Parse(ref); err == nil {
		if m, ok := mc.manifests[d]; ok {
			if m == nil {
				return nil, d, errors.New("the signature manifest is no longer in the registry")
			}
			return m, d, nil
		}
	}
	m, err := mc.ui.store.GetManifest(ctx, mc.repo, ref)
	if err != nil {
		if errors.Is(err, meta.ErrManifestNotFound) {
			if d, perr := digest.Parse(ref); perr == nil {
				mc.manifests[d] = nil
			}
			return nil, "", errors.New("the signature manifest is no longer in the registry")
		}
		return nil, "", err
	}
	pm, err := oci.ParseManifest(m.MediaType, m.Payload)
	if err != nil {
		return nil, m.Digest, err
	}
	mc.manifests[m.Digest] = pm
	return pm, m.Digest, nil
}

// signed is what the log entry of a signature must bind.
type signed struct {
	contentSHA256 []byte
	sig           []byte
	cert          *x509.Certificate
	logID         string // hex log id the signature names ("" unknown)
	statement     []byte // in-toto statement of an attestation
}

func (ui *UI) signatureView(ctx context.Context, mc *materials, s *meta.Signature, ref string) *sigView {
	sv := &sigView{Signature: *s, Attestation: s.PayloadType == payload.InTotoPayloadType}
	var sg *signed
	var err error
	switch s.Kind {
	case "sigstore-bundle":
		sg, err = ui.bundleMaterial(ctx, mc.repo, s.Layer)
	default:
		sg, err = ui.cosignMaterial(ctx, mc, s)
	}
	if err != nil {
		sv.Problem = err.Error()
	}
	ui.fillView(ctx, sv, sg, ref)
	return sv
}

// fillView adds to sv what the signed material shows: the certificate,
// the annotation marks, the log entry, the attestation's provenance and
// the commands to verify it.
func (ui *UI) fillView(ctx context.Context, sv *sigView, sg *signed, ref string) {
	var cert *x509.Certificate
	if sg != nil {
		cert = sg.cert
	}
	sv.KeyBased = cert == nil && sv.Problem == ""
	if cert != nil {
		sv.Cert = certSummary(cert)
	}
	for _, c := range verify.CheckProvenance(cert, anyMap(sv.Signature.Annotations)) {
		row := annRow{Key: c.Annotation, Value: c.Value, Mark: markSelfAsserted, Attested: c.Attested}
		if _, n, ok := fulcio.ParseOID(c.Extension); ok {
			row.Extension = fulcioName(n)
		}
		switch c.Status {
		case verify.ProvenanceMatch:
			row.Mark = markAttested
		case verify.ProvenanceContradiction:
			row.Mark = markContradicted
			sv.Contradictions++
		}
		sv.Marks = append(sv.Marks, row)
	}
	if sv.LogIndex != nil {
		sv.Entry = ui.checkEntry(ctx, *sv.LogIndex, sg)
		if sv.Cert != nil && !sv.Entry.Integrated.IsZero() {
			err := verify.CheckValidity(cert, sv.Entry.Integrated)
			sv.Cert.ValidAtLog = err == nil
			if err == nil {
				sv.Cert.Validity = "valid when the signature was logged (" + sv.Entry.Integrated.UTC().Format(time.RFC3339) + ")"
			} else {
				sv.Cert.Validity = "not valid when the signature was logged: " + err.Error()
			}
		}
	}
	if sg != nil && sg.statement != nil {
		if st, err := payload.ParseStatement(sg.statement); err == nil {
			sv.PredicateType = st.PredicateType
			sv.SLSA = slsaSummary(st)
		}
	}
	sv.Commands = verifyCommands(sv, ref)
}

// cosignMaterial reads a cosign signature layer's annotations: the
// signature, the certificate and the log bundle's log id.
func (ui *UI) cosignMaterial(ctx context.Context, mc *materials, s *meta.Signature) (*signed, error) {
	pm, _, err := mc.manifest(ctx, s.Manifest.String())
	if err != nil {
		return nil, err
	}
	for _, l := range pm.Layers {
		if l.Digest == s.Layer {
			return layerMaterial(l)
		}
	}
	return nil, errors.New("the signature layer is not in its manifest")
}

// layerMaterial reads a cosign layer's signature, certificate and log id
// (payload digest: the layer digest, SHA-256 of the payload).
func layerMaterial(l oci.Descriptor) (*signed, error) {
	sg := &signed{}
	if l.Digest.Algorithm() == digest.SHA256 {
		sg.contentSHA256, _ = hex.DecodeString(l.Digest.Encoded())
	}
	sg.sig, _ = base64.StdEncoding.DecodeString(l.Annotations[oci.AnnotationSignature])
	if p := l.Annotations[oci.AnnotationCertificate]; p != "" {
		c, err := verify.ParseCertificatePEM([]byte(p))
		if err != nil {
			return sg, fmt.Errorf("the certificate does not parse: %v", err)
		}
		sg.cert = c
	}
	if b := l.Annotations[oci.AnnotationBundle]; b != "" {
		if rb, err := rekor.ParseBundle(b); err == nil {
			sg.logID = strings.ToLower(rb.Payload.LogID)
		}
	}
	return sg, nil
}

// bundleMaterial reads a sigstore bundle blob.
func (ui *UI) bundleMaterial(ctx context.Context, repo string, layer digest.Digest) (*signed, error) {
	raw, err := ui.readBlob(ctx, repo, layer, maxSigBlob)
	if err != nil {
		return nil, err
	}
	sb, err := bundle.Parse(raw)
	if err != nil {
		return nil, err
	}
	sg := &signed{}
	if sg.cert, err = bundleCertificate(sb); err != nil {
		return sg, err
	}
	if es := sb.VerificationMaterial.TlogEntries; len(es) > 0 {
		sg.logID = hex.EncodeToString(es[0].LogID.KeyID)
	}
	if env := sb.DSSEEnvelope; env != nil {
		h := sha256.Sum256(env.Payload)
		sg.contentSHA256, sg.statement = h[:], env.Payload
		if len(env.Signatures) > 0 {
			sg.sig = env.Signatures[0].Sig
		}
	}
	return sg, nil
}

func certSummary(c *x509.Certificate) *certView {
	cv := &certView{Identities: fulcio.SubjectAlternativeNames(c), Issuer: fulcio.Issuer(c), CA: c.Issuer.String(),
		Serial: c.SerialNumber.Text(16), NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC()}
	for _, e := range c.Extensions {
		id, n, ok := fulcio.ParseOID(e.Id.String())
		if !ok || n == 7 {
			continue
		}
		v, ok := fulcio.Value(c, n)
		if !ok {
			continue
		}
		name := fulcioName(n)
		if name == "" {
			name = "extension " + strconv.Itoa(n)
		}
		cv.Extensions = append(cv.Extensions, extRow{OID: id.String(), Name: name, Value: v})
	}
	sort.Slice(cv.Extensions, func(i, j int) bool {
		_, a, _ := fulcio.ParseOID(cv.Extensions[i].OID)
		_, b, _ := fulcio.ParseOID(cv.Extensions[j].OID)
		return a < b
	})
	return cv
}

// logKey is the server's log key for verification.
func (ui *UI) logKey() (*ecdsa.PublicKey, error) {
	k, ok := ui.tlog.PublicKey().(*ecdsa.PublicKey)
	if !ok {
		return nil, errors.New("the log key is not ECDSA")
	}
	return k, nil
}

// checkEntry reads log entry idx from the server's log and checks it as a
// client would: the entry logs this signature (when the material is at
// hand), its SET verifies, and its inclusion proof leads to the root of a
// checkpoint signed by the log key (pkg/verify, the client's code).
func (ui *UI) checkEntry(ctx context.Context, idx int64, sg *signed) *entryView {
	ev := &entryView{Index: idx}
	if ui.tlog == nil {
		ev.Problem = "this server has no transparency log"
		return ev
	}
	id := ui.tlog.LogID()
	logID := hex.EncodeToString(id[:])
	if sg != nil && sg.logID != "" && sg.logID != logID {
		ev.Problem = "logged in another transparency log (log id " + sg.logID + "), not this server's"
		return ev
	}
	if idx < 0 {
		ev.Problem = "negative log index"
		return ev
	}
	e, err := ui.tlog.EntryByIndex(ctx, uint64(idx))
	if err != nil {
		ev.Problem = "this server's log has no entry " + strconv.FormatInt(idx, 10) + ": " + err.Error()
		return ev
	}
	return ui.entryCheck(e, sg)
}

// entryCheck verifies a server log entry (bound to sg when given).
func (ui *UI) entryCheck(e *tlog.LogEntry, sg *signed) *entryView {
	ev := &entryView{Index: int64(e.Index), UUID: e.EntryID, Integrated: time.Unix(e.IntegratedTime, 0).UTC(),
		TreeSize: e.Proof.TreeSize, Root: hex.EncodeToString(e.Proof.RootHash[:])}
	var head struct {
		Kind string `json:"kind"`
	}
	json.Unmarshal(e.Body, &head)
	ev.Kind = head.Kind
	id := ui.tlog.LogID()
	le := &rekor.LogEntry{Body: e.Body, IntegratedTime: e.IntegratedTime, LogIndex: int64(e.Index), LogID: hex.EncodeToString(id[:]),
		SET: e.SET, Proof: &rekor.InclusionProof{LogIndex: int64(e.Proof.LogIndex), TreeSize: int64(e.Proof.TreeSize),
			RootHash: e.Proof.RootHash[:], Hashes: e.Proof.Hashes, Checkpoint: string(e.Proof.Checkpoint)}}
	keys := map[string]root.LogKey{le.LogID: {Key: ui.tlog.PublicKey()}}
	var err error
	if sg != nil && sg.cert != nil && len(sg.contentSHA256) > 0 && len(sg.sig) > 0 {
		ev.Bound = true
		err = verify.VerifyLoggedSignature(le, keys, sg.contentSHA256, sg.sig, sg.cert.Raw, true)
	} else if err = verify.VerifySET(le, keys); err == nil {
		err = verify.VerifyInclusion(le, keys)
	}
	if err != nil {
		ev.Problem = err.Error()
		return ev
	}
	ev.Checked = true
	if key, kerr := ui.logKey(); kerr == nil {
		if cp, cerr := rekor.VerifyCheckpoint(e.Proof.Checkpoint, key); cerr == nil {
			ev.Origin = cp.Origin
		}
	}
	return ev
}

// slsaSummary renders a SLSA provenance predicate (v1 or v0.2): builder,
// source, invocation.
func slsaSummary(st payload.Statement) *slsaView {
	switch st.PredicateType {
	case payload.PredicateSLSA1:
		var p provenance.SLSAProvenance
		if json.Unmarshal(st.Predicate, &p) != nil {
			return nil
		}
		v := &slsaView{PredicateType: st.PredicateType, BuildType: p.BuildDefinition.BuildType, Builder: p.RunDetails.Builder.ID,
			Invocation: p.RunDetails.Metadata.InvocationID, Started: p.RunDetails.Metadata.StartedOn, Finished: p.RunDetails.Metadata.FinishedOn}
		if ep, ok := p.BuildDefinition.ExternalParameters["entryPoint"].(string); ok {
			v.EntryPoint = ep
		}
		if src, ok := p.BuildDefinition.ExternalParameters["source"].(string); ok {
			v.Sources = append(v.Sources, kv{src, ""})
		}
		for i, dep := range p.BuildDefinition.ResolvedDependencies {
			if i == 10 {
				break
			}
			v.Sources = append(v.Sources, kv{dep.URI, digestString(dep.Digest)})
		}
		return v
	case payload.PredicateSLSA02:
		var p struct {
			Builder struct {
				ID string `json:"id"`
			} `json:"builder"`
			BuildType  string `json:"buildType"`
			Invocation struct {
				ConfigSource struct {
					URI        string            `json:"uri"`
					Digest     map[string]string `json:"digest"`
					EntryPoint string            `json:"entryPoint"`
				} `json:"configSource"`
			} `json:"invocation"`
			Metadata struct {
				BuildInvocationID string `json:"buildInvocationID"`
				BuildStartedOn    string `json:"buildStartedOn"`
				BuildFinishedOn   string `json:"buildFinishedOn"`
			} `json:"metadata"`
			Materials []struct {
				URI    string            `json:"uri"`
				Digest map[string]string `json:"digest"`
			} `json:"materials"`
		}
		if json.Unmarshal(st.Predicate, &p) != nil {
			return nil
		}
		cs := p.Invocation.ConfigSource
		v := &slsaView{PredicateType: st.PredicateType, BuildType: p.BuildType, Builder: p.Builder.ID, EntryPoint: cs.EntryPoint,
			Invocation: p.Metadata.BuildInvocationID, Started: p.Metadata.BuildStartedOn, Finished: p.Metadata.BuildFinishedOn}
		if cs.URI != "" {
			v.Sources = append(v.Sources, kv{cs.URI, digestString(cs.Digest)})
		}
		for i, m := range p.Materials {
			if i == 10 {
				break
			}
			v.Sources = append(v.Sources, kv{m.URI, digestString(m.Digest)})
		}
		return v
	}
	return nil
}

func digestString(m map[string]string) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, k+":"+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// verifyCommands are the commands that verify the signature as the
// console shows it: hallmark and cosign, keyless by identity and issuer.
func verifyCommands(sv *sigView, ref string) []command {
	if sv.Cert == nil || sv.Signer == "" || sv.CertIssuer == "" {
		return nil
	}
	id, iss := shellQuote(sv.Signer), shellQuote(sv.CertIssuer)
	if sv.Attestation || sv.Legacy {
		typ := ""
		if sv.PredicateType != "" {
			typ = " --type " + shellQuote(sv.PredicateType)
		}
		return []command{
			{"hallmark", "hallmark verify-attestation --certificate-identity " + id + " --certificate-oidc-issuer " + iss + typ + " " + ref},
			{"cosign", "cosign verify-attestation --trusted-root trusted_root.json --certificate-identity " + id + " --certificate-oidc-issuer " + iss + typ + " " + ref},
		}
	}
	return []command{
		{"hallmark", "hallmark verify --certificate-identity " + id + " --certificate-oidc-issuer " + iss + " " + ref},
		{"cosign", "cosign verify --trusted-root trusted_root.json --certificate-identity " + id + " --certificate-oidc-issuer " + iss + " " + ref},
	}
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("@%+=:,./-_", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// legacyAttestations reads the attestations cosign attest attaches under
// the image's .att tag, which the signature index does not record: their
// certificate, provenance and log entry are shown as checked here; their
// status is "not indexed".
func (ui *UI) legacyAttestations(ctx context.Context, mc *materials, d digest.Digest, ref string) ([]*sigView, bool) {
	pm, md, err := mc.manifest(ctx, strings.Replace(d.String(), ":", "-", 1)+".att")
	if err != nil {
		return nil, false
	}
	var out []*sigView
	for i, l := range pm.Layers {
		if i == imageAttRows {
			return out, true
		}
		sv := &sigView{Legacy: true, Attestation: true, Signature: meta.Signature{Repository: mc.repo, Subject: d, Manifest: md,
			Layer: l.Digest, Kind: "cosign", PayloadType: payload.InTotoPayloadType, Status: "not indexed",
			StatusDetail: "attached under the .att tag; the signature index does not record these yet (verify with the command below)"}}
		sg, err := layerMaterial(l)
		if err != nil {
			sv.Problem = err.Error()
		}
		if raw, err := ui.readBlob(ctx, mc.repo, l.Digest, maxSigBlob); err != nil {
			sv.Problem = err.Error()
		} else if env, err := payload.ParseEnvelope(raw); err != nil {
			sv.Problem = err.Error()
		} else if body, err := env.DecodePayload(); err == nil && sg != nil {
			h := sha256.Sum256(body)
			sg.contentSHA256, sg.statement = h[:], body
			sg.sig = nil
			if len(env.Signatures) > 0 {
				sg.sig, _ = env.Signatures[0].Decode()
			}
		}
		if sg != nil && sg.cert != nil {
			if sans := fulcio.SubjectAlternativeNames(sg.cert); len(sans) > 0 {
				sv.Signer = sans[0]
			}
			sv.CertIssuer = fulcio.Issuer(sg.cert)
		}
		if b := l.Annotations[oci.AnnotationBundle]; b != "" {
			if rb, err := rekor.ParseBundle(b); err == nil && rb.Payload.LogIndex >= 0 {
				idx := rb.Payload.LogIndex
				sv.LogIndex = &idx
			}
		}
		ui.fillView(ctx, sv, sg, ref)
		out = append(out, sv)
	}
	return out, false
}

// fulcioName is the name of Fulcio extension n ("" when unnamed).
func fulcioName(n int) string {
	name, _ := fulcio.Name(n)
	return name
}

// bundleCertificate returns a sigstore bundle's signing certificate (nil
// for a key-based bundle), unverified: for display.
func bundleCertificate(b *bundle.Bundle) (*x509.Certificate, error) {
	vm := b.VerificationMaterial
	var der []byte
	switch {
	case vm.Certificate != nil:
		der = vm.Certificate.RawBytes
	case vm.X509CertificateChain != nil && len(vm.X509CertificateChain.Certificates) > 0:
		der = vm.X509CertificateChain.Certificates[0].RawBytes
	default:
		return nil, nil
	}
	return x509.ParseCertificate(der)
}
