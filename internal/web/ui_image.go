package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/pkg/oci"
)

// Bounds of the image page: how many of each list it shows, and how much
// of a blob it reads.
const (
	imageSigRows   = 10
	imageTagRows   = 50
	imageRefRows   = 50
	imageLayerRows = 100
	imagePlatforms = 64
	imageLabels    = 40
	imageAttRows   = 5
	maxConfigBlob  = 1 << 20
	maxSigBlob     = 4 << 20
)

type platformRow struct {
	Platform string
	Digest   digest.Digest
	Size     int64
	Status   string
}

type layerRow struct {
	MediaType string
	Digest    digest.Digest
	Size      int64
}

type kv struct{ Key, Value string }

type configSummary struct {
	Platform   string
	Created    string
	Entrypoint string
	Cmd        string
	User       string
	WorkingDir string
	Env        int
	Labels     []kv
	History    int
}

type imageData struct {
	Repository string
	Digest     digest.Digest
	Reference  string // registry/repo@digest
	MediaType  string
	Artifact   string
	Pushed     time.Time
	Size       int64
	Status     string
	Tallies    []StatusTally
	Tags       []string
	MoreTags   bool
	Subject    digest.Digest // the image this artifact is about (a referrer)
	Platforms  []platformRow
	MoreChilds int
	Layers     []layerRow
	MoreLayers int
	Config     *configSummary
	ConfigNote string
	Referrers  []meta.Descriptor
	MoreRefs   bool
	Signatures []*sigView
	NextSig    int64
	PrevSig    bool
	Legacy     []*sigView // attestations under the .att tag (not in the index)
	MoreLegacy bool
	// Quarantine is the active quarantine refusing pulls of the image
	// (its own, or its index's or child's), nil if none.
	Quarantine *meta.Quarantine
	// Maintainer: the visitor may quarantine the image and lift its
	// quarantine (the forms are shown).
	Maintainer bool
	Page       string // this page's path (where the forms return)
}

// image serves /ui/image/<repo>@<digest>.
func (ui *UI) image(w http.ResponseWriter, r *http.Request, v *Visitor, rest string) {
	ctx := r.Context()
	at := strings.LastIndexByte(rest, '@')
	if at < 0 {
		ui.notFound(w, r, v, "An image page is /ui/image/<repository>@<digest>.")
		return
	}
	repo, err1 := url.PathUnescape(rest[:at])
	ds, err2 := url.PathUnescape(rest[at+1:])
	if err1 != nil || err2 != nil || oci.ValidateName(repo) != nil {
		ui.notFound(w, r, v, "There is no such image.")
		return
	}
	d, err := oci.ParseDigest(ds)
	if err != nil {
		ui.badRequest(w, r, v, "The digest "+strconv.Quote(ds)+" is not valid: "+err.Error())
		return
	}
	var after int64
	if s := r.URL.Query().Get("after"); s != "" {
		if after, err = strconv.ParseInt(s, 10, 64); err != nil || after < 0 {
			ui.badRequest(w, r, v, "after: use the signature cursor from the link on the previous page.")
			return
		}
	}
	if ok, err := v.may(ctx, repo); err != nil {
		ui.internalError(w, r, v, err)
		return
	} else if !ok {
		ui.notFound(w, r, v, "There is no image "+d.String()+" in "+strconv.Quote(repo)+".")
		return
	}
	m, err := ui.store.GetManifest(ctx, repo, d.String())
	if errors.Is(err, meta.ErrManifestNotFound) {
		ui.notFound(w, r, v, "There is no image "+d.String()+" in "+strconv.Quote(repo)+".")
		return
	}
	if err != nil {
		ui.internalError(w, r, v, err)
		return
	}
	data, err := ui.imageData(ctx, repo, m, after)
	if err != nil {
		ui.internalError(w, r, v, err)
		return
	}
	data.Quarantine, data.Page = m.Quarantine, imageURL(repo, m.Digest)
	if data.Maintainer, err = ui.maintainerCheck(v, ui.caller(r, v))(ctx, repo); err != nil {
		ui.internalError(w, r, v, err)
		return
	}
	ui.render(w, r, http.StatusOK, "image", page{Title: repo + "@" + shortDigest(d), Nav: "repositories", V: v, Data: data})
}

func (ui *UI) imageData(ctx context.Context, repo string, m *meta.Manifest, after int64) (*imageData, error) {
	d := &imageData{Repository: repo, Digest: m.Digest, Reference: ui.registryHost() + "/" + repo + "@" + m.Digest.String(),
		MediaType: m.MediaType, Artifact: m.ArtifactType, Pushed: m.Created, Size: int64(len(m.Payload)), Subject: m.Subject,
		PrevSig: after > 0}
	var err error
	if d.Tags, d.MoreTags, err = ui.store.TagsOfN(ctx, repo, m.Digest, imageTagRows); err != nil {
		return nil, err
	}
	pm, perr := oci.ParseManifest(m.MediaType, m.Payload)
	subjects := []digest.Digest{m.Digest}
	if perr == nil {
		if pm.Config != nil && !oci.IsIndex(pm.MediaType) {
			d.Size += pm.Config.Size
		}
		for i, l := range pm.Layers {
			d.Size += l.Size
			if i < imageLayerRows {
				d.Layers = append(d.Layers, layerRow{l.MediaType, l.Digest, l.Size})
			}
		}
		d.MoreLayers = max(0, len(pm.Layers)-imageLayerRows)
		for i, c := range pm.Manifests {
			if i == imagePlatforms {
				d.MoreChilds = len(pm.Manifests) - imagePlatforms
				break
			}
			d.Platforms = append(d.Platforms, platformRow{Platform: platformString(c.Platform), Digest: c.Digest, Size: c.Size})
			subjects = append(subjects, c.Digest)
		}
		if pm.Config != nil && !oci.IsIndex(pm.MediaType) {
			d.Config, d.ConfigNote = ui.configSummary(ctx, repo, *pm.Config)
		}
	}
	counts, err := ui.store.SignatureStatusCounts(ctx, repo, subjects)
	if err != nil {
		return nil, err
	}
	d.Status = ImageStatus(counts[m.Digest])
	for st, n := range counts[m.Digest] {
		d.Tallies = append(d.Tallies, StatusTally{st, n})
	}
	sort.Slice(d.Tallies, func(i, j int) bool { return statusRank(d.Tallies[i].Status) < statusRank(d.Tallies[j].Status) })
	for i := range d.Platforms {
		d.Platforms[i].Status = ImageStatus(counts[d.Platforms[i].Digest])
	}
	if d.Referrers, d.MoreRefs, err = ui.store.ListReferrers(ctx, repo, m.Digest, imageRefRows); err != nil {
		return nil, err
	}
	sigs, more, err := ui.store.SignaturePage(ctx, repo, m.Digest, after, imageSigRows)
	if err != nil {
		return nil, err
	}
	if more && len(sigs) > 0 {
		d.NextSig = sigs[len(sigs)-1].ID
	}
	mc := &materials{ui: ui, repo: repo, manifests: map[digest.Digest]*oci.Manifest{}}
	for i := range sigs {
		d.Signatures = append(d.Signatures, ui.signatureView(ctx, mc, &sigs[i], d.Reference))
	}
	if after == 0 {
		d.Legacy, d.MoreLegacy = ui.legacyAttestations(ctx, mc, m.Digest, d.Reference)
	}
	return d, nil
}

func platformString(p *oci.Platform) string {
	if p == nil {
		return "unknown"
	}
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	if p.OSVersion != "" {
		s += " (" + p.OSVersion + ")"
	}
	return s
}

// readBlob reads blob d of repo, at most limit bytes, checking that repo
// has it (the blob store is shared by all repositories) and that the
// content matches the digest.
func (ui *UI) readBlob(ctx context.Context, repo string, d digest.Digest, limit int64) ([]byte, error) {
	size, err := ui.store.BlobSize(ctx, repo, d)
	if err != nil {
		return nil, fmt.Errorf("the repository does not have blob %s", shortDigest(d))
	}
	if size > limit {
		return nil, fmt.Errorf("blob %s is %s; the console reads at most %s", shortDigest(d), humanSize(size), humanSize(limit))
	}
	rc, _, err := ui.store.Open(ctx, d)
	if err != nil {
		return nil, fmt.Errorf("blob %s cannot be read: %v", shortDigest(d), err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, err
	}
	if d.Algorithm().Available() && d.Algorithm().FromBytes(b) != d {
		return nil, fmt.Errorf("blob %s does not match its digest", shortDigest(d))
	}
	return b, nil
}

// configSummary reads an image config: platform, command, labels.
func (ui *UI) configSummary(ctx context.Context, repo string, desc oci.Descriptor) (*configSummary, string) {
	raw, err := ui.readBlob(ctx, repo, desc.Digest, maxConfigBlob)
	if err != nil {
		return nil, err.Error()
	}
	var cfg struct {
		Architecture string `json:"architecture"`
		OS           string `json:"os"`
		Variant      string `json:"variant"`
		Created      string `json:"created"`
		Config       struct {
			Entrypoint []string          `json:"Entrypoint"`
			Cmd        []string          `json:"Cmd"`
			User       string            `json:"User"`
			WorkingDir string            `json:"WorkingDir"`
			Env        []string          `json:"Env"`
			Labels     map[string]string `json:"Labels"`
		} `json:"config"`
		History []json.RawMessage `json:"history"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, "the config (" + desc.MediaType + ") is not an image config"
	}
	cs := &configSummary{Created: cfg.Created, Entrypoint: strings.Join(cfg.Config.Entrypoint, " "), Cmd: strings.Join(cfg.Config.Cmd, " "),
		User: cfg.Config.User, WorkingDir: cfg.Config.WorkingDir, Env: len(cfg.Config.Env), History: len(cfg.History)}
	if cfg.OS != "" || cfg.Architecture != "" {
		cs.Platform = platformString(&oci.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant})
	}
	for k, v := range cfg.Config.Labels {
		cs.Labels = append(cs.Labels, kv{k, v})
	}
	sort.Slice(cs.Labels, func(i, j int) bool { return cs.Labels[i].Key < cs.Labels[j].Key })
	if len(cs.Labels) > imageLabels {
		cs.Labels = cs.Labels[:imageLabels]
	}
	return cs, ""
}
