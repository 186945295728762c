package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/internal/policy"
	"github.com/hallmark-dev/hallmark/pkg/oci"
)

// Quarantiner changes the pull policy for the console (policy.Service):
// rights, limits and audit are the JSON API's.
type Quarantiner interface {
	Quarantine(ctx context.Context, c policy.Caller, items []meta.QuarantineItem, reason string) ([]meta.QuarantineOutcome, error)
	Lift(ctx context.Context, c policy.Caller, items []meta.QuarantineItem, reason string) ([]meta.QuarantineOutcome, error)
}

// maxQuarantineItems bounds the images of one quarantine or lift from the
// console, as the API's (a whole result set with more is refused).
const maxQuarantineItems = policy.MaxItems

// maxQuarantineForm bounds the quarantine form's body: maxQuarantineItems
// image names of the longest kind, the search and the reason.
const maxQuarantineForm = 512 << 10

// quarantineRow is what a quarantine or lift did to one image.
type quarantineRow struct {
	Repository string
	Digest     digest.Digest
	// Outcome: quarantined, already quarantined, lifted, not quarantined,
	// or refused (Note says why).
	Outcome string
	Note    string
}

type quarantineData struct {
	Lift     bool
	Reason   string
	Rows     []quarantineRow
	Changed  int
	Same     int
	Refused  int
	Back     string
	MaxItems int
}

// quarantine serves POST /ui/quarantine: a maintainer (or admin)
// quarantines or lifts (do=quarantine|lift) the images selected on the
// search or image page (item=<repository>@<digest>, repeated) or every
// image of a search (scope=all, query=<the search's parameters>), with a
// reason, through the policy service with the session's caller. Images
// in repositories the visitor may not change are refused and listed; if
// that is all of them, nothing is done (403).
func (ui *UI) quarantine(w http.ResponseWriter, r *http.Request, v *Visitor) {
	if r.Method != http.MethodPost {
		ui.methodNotAllowed(w, r, v, "POST")
		return
	}
	if ui.cfg.Quarantine == nil || ui.cfg.Auth == nil {
		ui.notFound(w, r, v, "Quarantine from the console needs access control (sign-in); use hallmark quarantine add or the API.")
		return
	}
	if !ui.readFormN(w, r, v, maxQuarantineForm) {
		return
	}
	if !v.SignedIn || !ui.sameOrigin(r) || !auth.ValidCSRF(v.sess, r.PostForm.Get("csrf")) {
		ui.forbiddenPost(w, r, v)
		return
	}
	ctx, f := r.Context(), r.PostForm
	var change func(context.Context, policy.Caller, []meta.QuarantineItem, string) ([]meta.QuarantineOutcome, error)
	d := &quarantineData{Reason: strings.TrimSpace(f.Get("reason")), Back: localNext(f.Get("back")), MaxItems: maxQuarantineItems}
	switch f.Get("do") {
	case "quarantine":
		change = ui.cfg.Quarantine.Quarantine
	case "lift":
		change, d.Lift = ui.cfg.Quarantine.Lift, true
	default:
		ui.badRequest(w, r, v, "do: quarantine or lift.")
		return
	}
	c := ui.caller(r, v)
	var (
		items []meta.QuarantineItem
		err   error
	)
	if f.Get("scope") == "all" {
		acc, aerr := ui.access(ctx, c)
		if aerr != nil {
			ui.internalError(w, r, v, aerr)
			return
		}
		items, err = ui.resultSet(ctx, f.Get("query"), acc)
	} else {
		items, err = formItems(f["item"])
	}
	if err != nil {
		ui.searchFailed(w, r, v, err)
		return
	}
	may := ui.maintainerCheck(v, c)
	var allowed []meta.QuarantineItem
	for _, it := range items {
		ok, err := may(ctx, it.Repository)
		if err != nil {
			ui.internalError(w, r, v, err)
			return
		}
		if ok {
			allowed = append(allowed, it)
			continue
		}
		d.Refused++
		d.Rows = append(d.Rows, quarantineRow{Repository: it.Repository, Digest: it.Digest, Outcome: "refused",
			Note: "you may not change the pull policy of " + it.Repository + ": that needs maintainer rights in its project (or an admin)"})
	}
	if len(allowed) == 0 {
		ui.errorPage(w, r, v, http.StatusForbidden, "Not allowed",
			"Quarantining or lifting needs maintainer rights in the images' project (or an admin); you have them for none of these images.")
		return
	}
	out, err := change(ctx, c, allowed, d.Reason)
	var limited *policy.RateLimitedError
	switch {
	case errors.As(err, &limited):
		w.Header().Set("Retry-After", strconv.Itoa(int(limited.RetryAfter.Seconds())+1))
		ui.errorPage(w, r, v, http.StatusTooManyRequests, "Too many changes", limited.Error()+".")
		return
	case errors.Is(err, policy.ErrInvalid):
		ui.badRequest(w, r, v, err.Error())
		return
	case errors.Is(err, policy.ErrForbidden):
		ui.errorPage(w, r, v, http.StatusForbidden, "Not allowed", err.Error())
		return
	case err != nil:
		ui.internalError(w, r, v, err)
		return
	}
	done := make([]quarantineRow, 0, len(out)+len(d.Rows))
	for _, o := range out {
		row := quarantineRow{Repository: o.Item.Repository, Digest: o.Item.Digest}
		switch {
		case o.Changed && d.Lift:
			row.Outcome = "lifted"
		case o.Changed:
			row.Outcome = "quarantined"
		case d.Lift:
			row.Outcome = "not quarantined"
		default:
			row.Outcome = "already quarantined"
			if o.Quarantine != nil {
				row.Note = "since " + o.Quarantine.Created.UTC().Format("2006-01-02 15:04 UTC") + " by " + o.Quarantine.Actor + ": " + o.Quarantine.Reason
			}
		}
		if o.Changed {
			d.Changed++
		} else {
			d.Same++
		}
		done = append(done, row)
	}
	d.Rows = append(done, d.Rows...)
	title := "Quarantine"
	if d.Lift {
		title = "Quarantine lifted"
	}
	ui.render(w, r, http.StatusOK, "quarantine", page{Title: title, Nav: "search", V: v, Data: d})
}

// formItems reads the images a form names (<repository>@<digest>).
func formItems(names []string) ([]meta.QuarantineItem, error) {
	if len(names) == 0 {
		return nil, badQuery("select at least one image")
	}
	if len(names) > maxQuarantineItems {
		return nil, badQuery("%d images selected; at most %d at once", len(names), maxQuarantineItems)
	}
	items := make([]meta.QuarantineItem, 0, len(names))
	for _, n := range names {
		at := strings.LastIndexByte(n, '@')
		if at < 0 {
			return nil, badQuery("image %q: want <repository>@<digest>", truncate(n, 80))
		}
		if err := oci.ValidateName(n[:at]); err != nil {
			return nil, badQuery("image %q: %v", truncate(n, 80), err)
		}
		d, err := oci.ParseDigest(n[at+1:])
		if err != nil {
			return nil, badQuery("image %q: %v", truncate(n, 80), err)
		}
		items = append(items, meta.QuarantineItem{Repository: n[:at], Digest: d})
	}
	return items, nil
}

// resultSet returns the images (repository and digest, each once) of
// every signature the search in query (URL parameters) finds for a
// visitor who may see acc: at most maxQuarantineItems, else an error
// asking to narrow the search. A search without conditions is refused.
func (ui *UI) resultSet(ctx context.Context, query string, acc Access) ([]meta.QuarantineItem, error) {
	if ui.cfg.API == nil {
		return nil, badQuery("this server has no incident search")
	}
	vals, err := url.ParseQuery(query)
	if err != nil {
		return nil, badQuery("the search could not be read; search again")
	}
	vals = searchValues(vals)
	vals.Del("cursor")
	vals.Del("limit")
	if len(vals) == 0 {
		return nil, badQuery("give the search at least one condition before quarantining its result set")
	}
	q, err := ParseQuery(vals, ui.cfg.Now())
	if err != nil {
		return nil, err
	}
	seen := map[meta.QuarantineItem]bool{}
	var items []meta.QuarantineItem
	tooMany := fmt.Errorf("%w: the search finds more than %d images; narrow it (at most %d are quarantined at once)", ErrBadQuery, maxQuarantineItems, maxQuarantineItems)
	err = ui.cfg.API.searcher.run(ctx, q, acc, exportPage, true, func(rs []Result, _ string) (bool, error) {
		for _, r := range rs {
			it := meta.QuarantineItem{Repository: r.Repository, Digest: r.Subject}
			if seen[it] {
				continue
			}
			if len(items) == maxQuarantineItems {
				return false, tooMany
			}
			seen[it] = true
			items = append(items, it)
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, badQuery("the search finds no images you may see")
	}
	return items, nil
}
