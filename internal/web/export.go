package web

import (
	"archive/tar"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/index"
	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/pkg/bundle"
	"github.com/hallmark-dev/hallmark/pkg/oci"
	"github.com/hallmark-dev/hallmark/pkg/rekor"
	"github.com/hallmark-dev/hallmark/pkg/verify"
)

// Blobs opens stored blobs (signature layers, for bundle exports).
type Blobs interface {
	Open(ctx context.Context, d digest.Digest) (io.ReadSeekCloser, int64, error)
}

// InclusionProofs finds, for a log entry as a legacy signature's bundle
// annotation carries it (SET, no proof), its inclusion proof in this
// server's log: nil when the entry is not this log's (another log, or
// another body at that index).
type InclusionProofs interface {
	InclusionProof(ctx context.Context, e *rekor.LogEntry) (*rekor.InclusionProof, error)
}

type exportDeps struct {
	blobs  Blobs
	proofs InclusionProofs
}

// Export formats.
const (
	FormatCSV     = "csv"
	FormatNDJSON  = "ndjson"
	FormatBundles = "bundles"
)

// exportPage is the page size an export reads the store in.
const exportPage = 500

// maxLayerBlob bounds a signature layer read for a bundle (the indexer's
// bound).
const maxLayerBlob = 4 << 20

// Export trailers: why an export stopped early, and the cursor that
// continues it.
const (
	TrailerTruncated = "Hallmark-Export-Truncated"
	TrailerNext      = "Hallmark-Export-Next"
	TrailerError     = "Hallmark-Export-Error"
)

// exportSearch serves GET /api/v1/search/export?format=csv|ndjson|bundles
// with the parameters of a search, and max (the rows wanted, at most the
// server's cap). It streams every match, a page at a time: CSV with a
// header row, NDJSON one result per line, or a tar of sigstore bundles
// (one per signature, <repository>/<alg>-<hex>/signature-<id>.sigstore.json,
// and export.ndjson listing them and what could not be exported). At the
// cap it stops with a last record saying so and the trailers
// Hallmark-Export-Truncated and Hallmark-Export-Next (the cursor to go on).
func (a *API) exportSearch(w http.ResponseWriter, r *http.Request) {
	x, err := a.parseExport(r.URL.Query())
	if err != nil {
		a.exportFailed(w, r, err)
		return
	}
	acc, ok := a.access(w, r)
	if !ok {
		return
	}
	a.writeExport(w, r, x, acc, func(err error) { a.exportFailed(w, r, err) })
}

// exportRequest is a parsed export: its format, search and row cap.
type exportRequest struct {
	format string
	q      Query
	limit  int
}

// errNoBundles: this server cannot read signature layers for bundles.
var errNoBundles = errors.New("this server cannot export bundles")

// parseExport reads an export's parameters (a search's, format and max).
// Errors wrap ErrBadQuery, or are errNoBundles.
func (a *API) parseExport(v url.Values) (exportRequest, error) {
	format := v.Get("format")
	if !slices.Contains([]string{FormatCSV, FormatNDJSON, FormatBundles}, format) {
		return exportRequest{}, badQuery("format=%s: use csv, ndjson or bundles", strconv.Quote(truncate(format, 20)))
	}
	q, err := ParseQuery(v, a.now(), "format", "max")
	if err != nil {
		return exportRequest{}, err
	}
	limit := a.searcher.cfg.ExportRows
	if format == FormatBundles {
		limit = a.searcher.cfg.ExportBundles
		if a.export.blobs == nil {
			return exportRequest{}, errNoBundles
		}
	}
	if s := v.Get("max"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > limit {
			return exportRequest{}, badQuery("max must be between 1 and %d (this server's cap for %s)", limit, format)
		}
		limit = n
	}
	return exportRequest{format: format, q: q, limit: limit}, nil
}

func (a *API) exportFailed(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, errNoBundles) {
		a.fail(w, r, http.StatusNotImplemented, err.Error(), nil)
		return
	}
	a.searchFailed(w, r, err)
}

// writeExport streams x's export for a caller who may see acc (the JSON
// API's and the console's exports). A failure before the first byte is
// handed to failed, which answers; later ones end the export with a last
// record and the trailer saying it is incomplete.
func (a *API) writeExport(w http.ResponseWriter, r *http.Request, x exportRequest, acc Access, failed func(error)) {
	format, q, limit := x.format, x.q, x.limit
	var out exporter
	switch format {
	case FormatCSV:
		out = &csvExport{w: csv.NewWriter(w)}
	case FormatNDJSON:
		out = &ndjsonExport{w: w}
	default:
		out = &bundleExport{w: tar.NewWriter(w), api: a}
	}
	started := false
	start := func() {
		if started {
			return
		}
		started = true
		h := w.Header()
		h.Set("Content-Type", out.contentType())
		h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="hallmark-search-%s.%s"`, a.now().UTC().Format("20060102T150405Z"), out.extension()))
		h.Set("Trailer", TrailerTruncated+", "+TrailerNext+", "+TrailerError)
		h.Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusOK)
	}
	rows, stopped := 0, ""
	var last *meta.Signature
	flusher, _ := w.(http.Flusher)
	begun := false
	err := a.searcher.run(r.Context(), q, acc, exportPage, false, func(rs []Result, _ string) (bool, error) {
		start()
		if !begun {
			begun = true
			if err := out.begin(); err != nil {
				return false, err
			}
		}
		for i := range rs {
			if rows == limit {
				stopped = fmt.Sprintf("stopped after %d rows (the cap of one %s export); continue with cursor=<%s> or narrow the search", limit, format, TrailerNext)
				return false, nil
			}
			if err := out.write(r.Context(), rs[i]); err != nil {
				return false, err
			}
			rows++
			last = &rs[i].Signature
		}
		if flusher != nil {
			if err := out.flush(); err != nil {
				return false, err
			}
			flusher.Flush()
		}
		return true, nil
	})
	if err != nil && !started {
		failed(err)
		return
	}
	start()
	next := ""
	if stopped != "" && last != nil {
		next = encodeCursor(meta.CursorOf(last))
		w.Header().Set(TrailerTruncated, stopped)
		w.Header().Set(TrailerNext, next)
	}
	if err != nil {
		a.log.ErrorContext(r.Context(), "export failed midway", "format", format, "rows", rows, "err", err)
		w.Header().Set(TrailerError, "the export failed after "+strconv.Itoa(rows)+" rows; it is incomplete")
		stopped = "the export failed after " + strconv.Itoa(rows) + " rows; it is incomplete, retry"
	}
	if err := out.end(stopped, next); err != nil {
		a.log.WarnContext(r.Context(), "finishing an export", "err", err)
	}
}

// exporter writes one export format.
type exporter interface {
	contentType() string
	extension() string
	begin() error
	write(ctx context.Context, r Result) error
	flush() error
	// end finishes the export; stopped, when set, says why it is
	// incomplete and next continues it.
	end(stopped, next string) error
}

// ndjsonExport writes one SignatureJSON per line.
type ndjsonExport struct{ w io.Writer }

func (e *ndjsonExport) contentType() string { return "application/x-ndjson" }
func (e *ndjsonExport) extension() string   { return "ndjson" }
func (e *ndjsonExport) begin() error        { return nil }
func (e *ndjsonExport) flush() error        { return nil }

func (e *ndjsonExport) write(_ context.Context, r Result) error {
	b, err := json.Marshal(ResultJSON(r))
	if err != nil {
		return err
	}
	_, err = e.w.Write(append(b, '\n'))
	return err
}

// end writes, for an incomplete export, a last line that is no result:
// {"truncated": "<why>", "next": "<cursor>"}.
func (e *ndjsonExport) end(stopped, next string) error {
	if stopped == "" {
		return nil
	}
	b, _ := json.Marshal(map[string]string{"truncated": stopped, "next": next})
	_, err := e.w.Write(append(b, '\n'))
	return err
}

// csvColumns are the columns of a CSV export. A search field's column
// holds its values (space separated), its _basis column what the first
// rests on (meta.Basis*).
var csvColumns = []string{"created", "repository", "image_digest", "tags", "status", "status_detail", "kind", "signer", "issuer",
	"log_index", "certificate_sha256", "ca_serial", "commit", "commit_basis", "pipeline", "pipeline_basis", "job", "job_basis",
	"ref", "ref_basis", "user", "user_basis", "runner", "runner_basis", "token_project", "contradictions", "matches",
	"signature_manifest", "layer"}

// csvExport writes RFC 4180 CSV with a header row.
type csvExport struct{ w *csv.Writer }

func (e *csvExport) contentType() string { return "text/csv; charset=utf-8; header=present" }
func (e *csvExport) extension() string   { return "csv" }
func (e *csvExport) begin() error        { return e.w.Write(csvColumns) }

func (e *csvExport) flush() error {
	e.w.Flush()
	return e.w.Error()
}

func (e *csvExport) write(_ context.Context, r Result) error {
	s := r.Signature
	logIndex, serial, tokenProject := "", "", ""
	if s.LogIndex != nil {
		logIndex = strconv.FormatInt(*s.LogIndex, 10)
	}
	if s.Certificate != nil {
		serial, tokenProject = s.Certificate.Serial, s.Certificate.ProjectPath
	}
	row := []string{s.Created.UTC().Format(time.RFC3339Nano), s.Repository, s.Subject.String(), strings.Join(r.Tags, " "), s.Status,
		s.StatusDetail, s.Kind, s.Signer, s.CertIssuer, logIndex, s.CertSHA256, serial}
	for _, f := range []string{meta.FieldCommit, meta.FieldPipeline, meta.FieldJob, meta.FieldRef, meta.FieldUser, meta.FieldRunner} {
		vals, basis := factColumn(s.Facts, f)
		row = append(row, vals, basis)
	}
	var con, mat []string
	for _, c := range r.Contradictions {
		con = append(con, fmt.Sprintf("%s: %s=%q, evidence (%s) says %s", c.Field, c.Annotation, c.Asserted, c.Basis, strings.Join(c.Evidence, " ")))
	}
	for _, m := range r.Matches {
		mat = append(mat, m.Field+"="+m.Value+" ("+m.Basis+")")
	}
	row = append(row, tokenProject, strings.Join(con, "; "), strings.Join(mat, "; "), s.Manifest.String(), s.Layer.String())
	for i := range row {
		row[i] = csvSafe(row[i])
	}
	return e.w.Write(row)
}

// end writes, for an incomplete export, a last row that is no result:
// "# truncated" in the first column, why in the second, the cursor in
// the third.
func (e *csvExport) end(stopped, next string) error {
	if stopped != "" {
		row := make([]string, len(csvColumns))
		row[0], row[1], row[2] = "# truncated", csvSafe(stopped), next
		if err := e.w.Write(row); err != nil {
			return err
		}
	}
	return e.flush()
}

// factColumn returns the values of field among facts (the full form of a
// ref only) and the basis of the first.
func factColumn(facts []meta.Fact, field string) (string, string) {
	var vals []string
	basis := ""
	for _, f := range facts {
		if f.Field != field || (field == meta.FieldRef && !strings.HasPrefix(f.Value, "refs/") && hasFullRef(facts)) {
			continue
		}
		if basis == "" {
			basis = f.Basis
		}
		vals = append(vals, f.Value)
	}
	return strings.Join(vals, " "), basis
}

func hasFullRef(facts []meta.Fact) bool {
	return slices.ContainsFunc(facts, func(f meta.Fact) bool { return f.Field == meta.FieldRef && strings.HasPrefix(f.Value, "refs/") })
}

// csvSafe defuses CSV formula injection: a cell a spreadsheet would run as
// a formula (starting with = + - @, or a tab or carriage return) gets a
// leading apostrophe (OWASP's advice); encoding/csv quotes the rest.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// bundleExport writes a tar of sigstore bundles.
type bundleExport struct {
	w     *tar.Writer
	api   *API
	index []byte // export.ndjson, written last
	// the manifest the last signature came from (signatures of one
	// manifest come together)
	manifestKey string
	manifest    *oci.Manifest
}

func (e *bundleExport) contentType() string { return "application/x-tar" }
func (e *bundleExport) extension() string   { return "tar" }
func (e *bundleExport) begin() error        { return nil }
func (e *bundleExport) flush() error        { return e.w.Flush() }

// maxIndexBytes bounds export.ndjson (it is kept until the end).
const maxIndexBytes = 8 << 20

func (e *bundleExport) write(ctx context.Context, r Result) error {
	s := r.Signature
	name := fmt.Sprintf("%s/%s-%s/signature-%d.sigstore.json", s.Repository, s.Subject.Algorithm(), s.Subject.Encoded(), s.ID)
	entry := map[string]any{"repository": s.Repository, "subject": s.Subject.String(), "signer": s.Signer, "status": s.Status,
		"created": s.Created, "signatureManifest": s.Manifest.String(), "layer": s.Layer.String()}
	b, payload, err := e.bundle(ctx, s)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var skip *skipError
		if !errors.As(err, &skip) {
			return err
		}
		entry["error"] = skip.reason
	} else {
		entry["file"] = name
		if err := e.file(name, b, s.Created); err != nil {
			return err
		}
		if payload != nil {
			p := strings.TrimSuffix(name, ".sigstore.json") + ".payload.json"
			entry["payload"] = p
			if err := e.file(p, payload, s.Created); err != nil {
				return err
			}
		}
	}
	line, _ := json.Marshal(entry)
	if len(e.index)+len(line) < maxIndexBytes {
		e.index = append(append(e.index, line...), '\n')
	}
	return nil
}

func (e *bundleExport) end(stopped, next string) error {
	if stopped != "" {
		line, _ := json.Marshal(map[string]string{"truncated": stopped, "next": next})
		e.index = append(append(e.index, line...), '\n')
	}
	if err := e.file("export.ndjson", e.index, time.Now()); err != nil {
		return err
	}
	return e.w.Close()
}

// file writes one regular file into the tar.
func (e *bundleExport) file(name string, b []byte, mod time.Time) error {
	if err := e.w.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), ModTime: mod, Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
		return err
	}
	_, err := e.w.Write(b)
	return err
}

// skipError: one signature cannot be exported as a bundle (it is listed
// in export.ndjson with the reason).
type skipError struct{ reason string }

func (e *skipError) Error() string { return e.reason }

func skip(format string, args ...any) error { return &skipError{fmt.Sprintf(format, args...)} }

// bundle returns the sigstore bundle of s: a bundle referrer's layer as
// stored; a cosign .sig layer converted (certificate or key hint, the
// message signature over its payload, its log entry with the SET of its
// bundle annotation and, when this server's log has it, the inclusion
// proof: then a v0.3 bundle, else v0.1) with the payload it signs (the
// simple-signing JSON naming the image), which a message signature's
// verifier needs.
func (e *bundleExport) bundle(ctx context.Context, s meta.Signature) (b, payload []byte, err error) {
	if s.Layer == "" {
		return nil, nil, skip("no signature layer was recorded (%s)", s.StatusDetail)
	}
	l, err := e.layer(ctx, s)
	if err != nil {
		return nil, nil, err
	}
	data, err := e.readBlob(ctx, l.Digest)
	if err != nil {
		return nil, nil, err
	}
	if s.Kind == verify.KindBundle || oci.IsBundleType(l.MediaType) {
		return data, nil, nil
	}
	signed := verify.LayerSignature(verify.Layer{Digest: l.Digest.String(), MediaType: l.MediaType, Payload: data, Annotations: l.Annotations})
	c, err := signed.Content()
	if err != nil {
		return nil, nil, skip("the signature layer cannot be read: %v", err)
	}
	cert, _, err := signed.Certificate()
	if err != nil {
		return nil, nil, skip("the signing certificate cannot be read: %v", err)
	}
	entries, err := signed.TlogEntries()
	if err != nil {
		return nil, nil, skip("the log entry cannot be read: %v", err)
	}
	bs := bundle.Signature{Payload: c.Payload, Sig: c.Signatures[0], Entries: entries}
	if cert != nil {
		bs.Certificate = cert.Raw
	} else {
		bs.KeyHint = s.Signer
	}
	if e.api.export.proofs != nil {
		for _, en := range entries {
			p, err := e.api.export.proofs.InclusionProof(ctx, en)
			if err != nil {
				return nil, nil, err
			}
			en.Proof = p
		}
	}
	if b, err = bundle.Encode(bs); err != nil {
		return nil, nil, skip("%v", err)
	}
	return b, c.Payload, nil
}

// layer finds s's layer in its signature manifest: the layer with s's
// digest and dedupe key.
func (e *bundleExport) layer(ctx context.Context, s meta.Signature) (oci.Descriptor, error) {
	key := s.Repository + "@" + s.Manifest.String()
	if key != e.manifestKey {
		e.manifestKey, e.manifest = key, nil
		m, err := e.api.store.GetManifest(ctx, s.Repository, s.Manifest.String())
		if errors.Is(err, meta.ErrManifestNotFound) {
			return oci.Descriptor{}, skip("the signature manifest %s is no longer in %s", s.Manifest, s.Repository)
		}
		if err != nil {
			return oci.Descriptor{}, err
		}
		if e.manifest, err = oci.ParseManifest(m.MediaType, m.Payload); err != nil {
			return oci.Descriptor{}, skip("the signature manifest cannot be read: %v", err)
		}
	}
	if e.manifest == nil {
		return oci.Descriptor{}, skip("the signature manifest cannot be read")
	}
	bundleKind := s.Kind == verify.KindBundle
	for _, l := range e.manifest.Layers {
		if l.Digest == s.Layer && index.LayerKey(s.Subject, l, bundleKind) == s.Key {
			return l, nil
		}
	}
	return oci.Descriptor{}, skip("layer %s is not in the signature manifest %s", s.Layer, s.Manifest)
}

func (e *bundleExport) readBlob(ctx context.Context, d digest.Digest) ([]byte, error) {
	rc, _, err := e.api.export.blobs.Open(ctx, d)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, skip("the signature layer %s is not in the blob store: %v", d, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxLayerBlob+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxLayerBlob {
		return nil, skip("the signature layer is larger than %d bytes", maxLayerBlob)
	}
	if ok, _ := oci.DigestMatches(d.String(), b); !ok {
		return nil, skip("the signature layer does not match its digest %s", d)
	}
	return b, nil
}
