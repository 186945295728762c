package web

import (
	"context"
	"encoding/hex"
	"net/http"
	"time"

	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/pkg/rekor"
)

// countsTTL is how long the per-repository image counts are reused: they
// come from one aggregate query over the whole index, which a busy
// overview page must not run on every view.
const countsTTL = 15 * time.Second

// maxCountedRepos bounds how many repositories the overview checks the
// visitor's access to.
const maxCountedRepos = 1000

type countsCache struct {
	at   time.Time
	rows []meta.StatusCount
}

func (ui *UI) statusCounts(ctx context.Context) ([]meta.StatusCount, error) {
	ui.countsMu.Lock()
	defer ui.countsMu.Unlock()
	now := ui.cfg.Now()
	if ui.counts.rows != nil && now.Sub(ui.counts.at) < countsTTL && !now.Before(ui.counts.at) {
		return ui.counts.rows, nil
	}
	rows, err := ui.store.ImageStatusCounts(ctx, statusOrder, StatusOther, StatusUnsigned)
	if err != nil {
		return nil, err
	}
	if rows == nil {
		rows = []meta.StatusCount{}
	}
	ui.counts = countsCache{at: now, rows: rows}
	return rows, nil
}

// StatusTally is one status with its image count.
type StatusTally struct {
	Status string
	Images int
}

type overviewData struct {
	Images, Signed int
	Tallies        []StatusTally
	Repositories   int
	Truncated      bool
	Pushes         []meta.ImageRef
	Signatures     []meta.Signature
	Log            *logHead
}

// logHead is the log's state as the console shows it.
type logHead struct {
	Size       uint64
	Root       string
	Origin     string
	Checkpoint string
	Verified   bool
	Problem    string
}

// recentRows is how many recent pushes and signatures the overview lists,
// and recentScan how many it reads to find them among visible projects.
const (
	recentRows = 8
	recentScan = 200
)

func (ui *UI) overview(w http.ResponseWriter, r *http.Request, v *Visitor) {
	ctx := r.Context()
	rows, err := ui.statusCounts(ctx)
	if err != nil {
		ui.internalError(w, r, v, err)
		return
	}
	d := overviewData{}
	byStatus := map[string]int{}
	repos := map[string]bool{}
	for _, c := range rows {
		ok, seen := repos[c.Repository]
		if !seen {
			if len(repos) == maxCountedRepos {
				d.Truncated = true
				break
			}
			if ok, err = v.may(ctx, c.Repository); err != nil {
				ui.internalError(w, r, v, err)
				return
			}
			repos[c.Repository] = ok
		}
		if ok {
			byStatus[c.Status] += c.Images
			d.Images += c.Images
		}
	}
	for _, ok := range repos {
		if ok {
			d.Repositories++
		}
	}
	for _, st := range append(append([]string{}, statusOrder...), StatusUnsigned, StatusOther) {
		if st == StatusOther && byStatus[st] == 0 {
			continue
		}
		d.Tallies = append(d.Tallies, StatusTally{st, byStatus[st]})
	}
	d.Signed = d.Images - byStatus[StatusUnsigned]
	pushes, err := ui.store.RecentImages(ctx, recentScan)
	if err == nil {
		d.Pushes, err = visible(ctx, v, pushes, func(p meta.ImageRef) string { return p.Repository }, recentRows)
	}
	if err != nil {
		ui.internalError(w, r, v, err)
		return
	}
	sigs, err := ui.store.RecentSignatures(ctx, recentScan)
	if err == nil {
		d.Signatures, err = visible(ctx, v, sigs, func(s meta.Signature) string { return s.Repository }, recentRows)
	}
	if err != nil {
		ui.internalError(w, r, v, err)
		return
	}
	if d.Log, err = ui.logHead(ctx); err != nil {
		ui.internalError(w, r, v, err)
		return
	}
	ui.render(w, r, http.StatusOK, "overview", page{Title: "Overview", Nav: "overview", V: v, Data: d})
}

// visible returns the first n of items in repositories (repo) the
// visitor may pull.
func visible[T any](ctx context.Context, v *Visitor, items []T, repo func(T) string, n int) ([]T, error) {
	var out []T
	for _, it := range items {
		if len(out) == n {
			break
		}
		ok, err := v.may(ctx, repo(it))
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, it)
		}
	}
	return out, nil
}

// logHead reads the log's head and checks its checkpoint's signature with
// the log key (nil without a log).
func (ui *UI) logHead(ctx context.Context) (*logHead, error) {
	if ui.tlog == nil {
		return nil, nil
	}
	head, err := ui.tlog.Head(ctx)
	if err != nil {
		return nil, err
	}
	h := &logHead{Size: head.Size, Root: hex.EncodeToString(head.Root[:]), Checkpoint: string(head.Checkpoint)}
	if len(head.Checkpoint) == 0 {
		h.Problem = "the log has not signed a checkpoint yet"
		return h, nil
	}
	cp, err := ui.verifyCheckpoint(head.Checkpoint)
	if err != nil {
		h.Problem = err.Error()
		return h, nil
	}
	h.Origin, h.Verified = cp.Origin, cp.Size == head.Size && cp.Root == head.Root
	if !h.Verified {
		h.Problem = "the signed checkpoint is not for the tree head"
	}
	return h, nil
}

// verifyCheckpoint checks a signed note with the log's key, as clients do.
func (ui *UI) verifyCheckpoint(note []byte) (*rekor.SignedCheckpoint, error) {
	key, err := ui.logKey()
	if err != nil {
		return nil, err
	}
	return rekor.VerifyCheckpoint(note, key)
}
