package web

import (
	"bytes"
	"context"
	"crypto"
	"embed"
	"errors"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/internal/tlog"
)

//go:embed ui/templates/*.html ui/static/*
var uiFiles embed.FS

// UIPath is where the console is mounted.
const UIPath = "/ui/"

// Catalog is what the console reads about repositories and tags.
type Catalog interface {
	SearchRepositories(ctx context.Context, contains, after string, n int) ([]string, bool, error)
	ListTagInfo(ctx context.Context, repo, after string, n int, artifacts bool) ([]meta.TagInfo, bool, error)
	GetManifest(ctx context.Context, repo, reference string) (*meta.Manifest, error)
	TagsOfN(ctx context.Context, repo string, d digest.Digest, n int) ([]string, bool, error)
	ListReferrers(ctx context.Context, repo string, d digest.Digest, n int) ([]meta.Descriptor, bool, error)
}

// SignatureIndex is what the console reads from the signature index.
type SignatureIndex interface {
	SignaturePage(ctx context.Context, repo string, subject digest.Digest, after int64, n int) ([]meta.Signature, bool, error)
	LatestSignatures(ctx context.Context, repo string, subjects []digest.Digest, n int) ([]meta.Signature, error)
	SignatureStatusCounts(ctx context.Context, repo string, subjects []digest.Digest) (map[digest.Digest]map[string]int, error)
	SignaturesByLogIndex(ctx context.Context, idx int64, n int) ([]meta.Signature, error)
}

// Activity is what the overview reads.
type Activity interface {
	ImageStatusCounts(ctx context.Context, order []string, other, unsigned string) ([]meta.StatusCount, error)
	RecentImages(ctx context.Context, n int) ([]meta.ImageRef, error)
	RecentSignatures(ctx context.Context, n int) ([]meta.Signature, error)
}

// BlobReader reads blobs a repository has (image configs, sigstore
// bundles, attestation envelopes).
type BlobReader interface {
	BlobSize(ctx context.Context, repo string, d digest.Digest) (int64, error)
	Open(ctx context.Context, d digest.Digest) (io.ReadSeekCloser, int64, error)
}

// UIStore is everything the console reads from the database and storage.
type UIStore interface {
	Catalog
	SignatureIndex
	Activity
	BlobReader
}

// TransparencyLog is the server's log as the console shows it.
type TransparencyLog interface {
	Head(ctx context.Context) (tlog.TreeState, error)
	EntryByIndex(ctx context.Context, index uint64) (*tlog.LogEntry, error)
	EntryByUUID(ctx context.Context, uuid string) (*tlog.LogEntry, error)
	PublicKey() crypto.PublicKey
	LogID() [32]byte
}

// SessionManager signs visitors in and out (auth.Sessions).
type SessionManager interface {
	Login(ctx context.Context, user, secret, remote string) (string, auth.Session, auth.Principal, error)
	Resume(ctx context.Context, id string) (auth.Principal, auth.Session, error)
	Logout(ctx context.Context, id, remote string) error
}

// UIAuth is the console's access control (registry access control on):
// sessions, the pull check the provenance API uses, the client address
// rule and the audit log. Without it every visitor sees everything.
type UIAuth struct {
	Sessions   SessionManager
	PullCheck  func(auth.Principal) auth.PullCheck
	ClientAddr func(*http.Request) string
	Audit      func(ctx context.Context, q auth.AuditQuery) ([]auth.AuditEvent, error)
	// Caller is the API caller of a visitor's principal from an address
	// (auth.APIAuthorizer.SessionCaller), Visible what it may see as a
	// search's filter (VisibleTo): the search page and the quarantine
	// form see and do what the JSON API would let the same principal.
	Caller  func(p auth.Principal, remote string) auth.Caller
	Visible func(ctx context.Context, c auth.Caller) (auth.Visible, error)
}

// UIConfig configures the console.
type UIConfig struct {
	// ExternalURL is the server's URL (the registry host of the commands
	// shown, the origin POSTs must come from).
	ExternalURL string
	// SecureCookies marks cookies Secure (TLS, or a TLS-terminating proxy).
	SecureCookies bool
	// Auth, when set, turns sign-in and per-visitor access on.
	Auth *UIAuth
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
	// API, when set, is the provenance API whose search and exports the
	// search page shares (/ui/search, /ui/search/export).
	API *API
	// Quarantine, when set (with Auth), lets maintainers quarantine and
	// lift images from the search and image pages (policy.Service).
	Quarantine Quarantiner
}

// UI is the web console: server-rendered pages under /ui/.
type UI struct {
	store  UIStore
	tlog   TransparencyLog
	log    *slog.Logger
	cfg    UIConfig
	origin string
	pages  map[string]*template.Template
	static http.Handler

	countsMu sync.Mutex
	counts   countsCache
}

// NewUI returns the console. tl may be nil (no log pages).
func NewUI(store UIStore, tl TransparencyLog, log *slog.Logger, cfg UIConfig) (*UI, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	u, err := url.Parse(cfg.ExternalURL)
	if err != nil || u.Host == "" {
		return nil, errors.New("web: the console needs the server's external URL")
	}
	ui := &UI{store: store, tlog: tl, log: log, cfg: cfg, origin: u.Scheme + "://" + u.Host, pages: map[string]*template.Template{}}
	if err := ui.parseTemplates(); err != nil {
		return nil, err
	}
	static, err := fs.Sub(uiFiles, "ui/static")
	if err != nil {
		return nil, err
	}
	ui.static = http.StripPrefix(UIPath+"static/", http.FileServerFS(static))
	return ui, nil
}

// registryHost is the host clients pull from (for the commands shown).
func (ui *UI) registryHost() string {
	return strings.TrimPrefix(strings.TrimPrefix(ui.origin, "https://"), "http://")
}

// ServeHTTP routes console requests.
func (ui *UI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w.Header())
	rest := strings.TrimPrefix(r.URL.Path, UIPath)
	if strings.HasPrefix(rest, "static/") {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			ui.methodNotAllowed(w, r, &Visitor{authOn: ui.cfg.Auth != nil}, "GET")
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=300")
		ui.static.ServeHTTP(w, r)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	v := ui.visitor(w, r)
	switch {
	case rest == "login":
		ui.login(w, r, v)
		return
	case rest == "logout":
		ui.logout(w, r, v)
		return
	case rest == "quarantine":
		ui.quarantine(w, r, v)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		ui.methodNotAllowed(w, r, v, "GET")
		return
	}
	switch {
	case rest == "":
		ui.overview(w, r, v)
	case rest == "repositories":
		ui.repositories(w, r, v)
	case strings.HasPrefix(rest, "repo/"):
		ui.repository(w, r, v, strings.TrimPrefix(rest, "repo/"))
	case strings.HasPrefix(rest, "image/"):
		ui.image(w, r, v, strings.TrimPrefix(rest, "image/"))
	case rest == "search":
		ui.search(w, r, v)
	case rest == "search/export":
		ui.searchExport(w, r, v)
	case rest == "log":
		ui.logPage(w, r, v)
	case rest == "audit":
		ui.audit(w, r, v)
	default:
		ui.notFound(w, r, v, "There is no such page.")
	}
}

// securityHeaders: no inline script or style anywhere (the CSP allows only
// the console's own files), no framing, no referrer to other sites (same-origin: a
// form POST then carries its real Origin, which no-referrer would blank).
func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
		"form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
}

// Visitor is who is looking: a signed-in user or an anonymous visitor.
type Visitor struct {
	p        auth.Principal
	sess     auth.Session
	SignedIn bool
	// Notice says why a session just ended ("" normally).
	Notice string
	check  auth.PullCheck
	seen   map[string]bool
	authOn bool
}

// Name is the signed-in user's name.
func (v *Visitor) Name() string { return v.p.User }

// Admin reports whether the visitor is an admin (sees every project and
// the audit log).
func (v *Visitor) Admin() bool {
	return !v.authOn || (v.SignedIn && v.p.Admin && v.p.Kind == auth.KindUser)
}

// AuthOn reports whether sign-in exists at all.
func (v *Visitor) AuthOn() bool { return v.authOn }

// CSRF is the token the visitor's forms carry.
func (v *Visitor) CSRF() string { return v.sess.CSRF }

// may reports whether the visitor may pull repo (memoized per request).
func (v *Visitor) may(ctx context.Context, repo string) (bool, error) {
	if v.check == nil {
		return true, nil
	}
	if ok, seen := v.seen[repo]; seen {
		return ok, nil
	}
	ok, err := v.check(ctx, repo)
	if err != nil {
		return false, err
	}
	v.seen[repo] = ok
	return ok, nil
}

// Cookie names.
const (
	sessionCookie = "hallmark_session"
	loginCookie   = "hallmark_login" // CSRF token of the sign-in form
)

// visitor resolves the request's session; an unknown or expired session
// cookie is cleared and the visitor is anonymous.
func (ui *UI) visitor(w http.ResponseWriter, r *http.Request) *Visitor {
	a := ui.cfg.Auth
	if a == nil {
		return &Visitor{}
	}
	v := &Visitor{authOn: true, seen: map[string]bool{}}
	if c, err := r.Cookie(sessionCookie); err == nil && c.Value != "" {
		p, sess, err := a.Sessions.Resume(r.Context(), c.Value)
		switch {
		case err == nil:
			v.p, v.sess, v.SignedIn = p, sess, true
		case errors.Is(err, auth.ErrNoSession):
			ui.setCookie(w, sessionCookie, "", -1)
			v.Notice = "Your session has ended; sign in again to see private projects."
		default:
			ui.log.ErrorContext(r.Context(), "resuming a console session", "err", err)
		}
	}
	if !v.SignedIn {
		v.p = auth.Principal{Kind: auth.KindAnonymous}
	}
	v.check = a.PullCheck(v.p)
	return v
}

func (ui *UI) setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: UIPath, MaxAge: maxAge, HttpOnly: true,
		Secure: ui.cfg.SecureCookies, SameSite: http.SameSiteStrictMode})
}

// page is what every template gets.
type page struct {
	Title   string
	Nav     string
	V       *Visitor
	Data    any
	Status  int
	Message string
}

// render executes page template name with data, buffered: a template
// error becomes a 500, never half a page.
func (ui *UI) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	t := ui.pages[name]
	var buf bytes.Buffer
	if t == nil {
		ui.log.ErrorContext(r.Context(), "console template missing", "template", name)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if err := t.ExecuteTemplate(&buf, "layout", p); err != nil {
		ui.log.ErrorContext(r.Context(), "rendering a console page", "template", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write(buf.Bytes())
	}
}

// errorPage renders an error with its status.
func (ui *UI) errorPage(w http.ResponseWriter, r *http.Request, v *Visitor, status int, title, msg string) {
	ui.render(w, r, status, "error", page{Title: title, V: v, Status: status, Message: msg})
}

func (ui *UI) notFound(w http.ResponseWriter, r *http.Request, v *Visitor, msg string) {
	if v != nil && v.authOn && !v.SignedIn {
		msg += " Private projects are shown only after signing in."
	}
	ui.errorPage(w, r, v, http.StatusNotFound, "Not found", msg)
}

func (ui *UI) badRequest(w http.ResponseWriter, r *http.Request, v *Visitor, msg string) {
	ui.errorPage(w, r, v, http.StatusBadRequest, "Bad request", msg)
}

func (ui *UI) internalError(w http.ResponseWriter, r *http.Request, v *Visitor, err error) {
	ui.log.ErrorContext(r.Context(), "console request failed", "path", r.URL.Path, "err", err)
	status, msg := http.StatusInternalServerError, "Something went wrong on the server; the server log has the details."
	if errors.Is(err, meta.ErrUnavailable) {
		status, msg = http.StatusServiceUnavailable, "The database is unavailable; retry shortly."
	}
	ui.errorPage(w, r, v, status, "Server error", msg)
}

func (ui *UI) methodNotAllowed(w http.ResponseWriter, r *http.Request, v *Visitor, allow string) {
	w.Header().Set("Allow", allow)
	ui.errorPage(w, r, v, http.StatusMethodNotAllowed, "Method not allowed", "This page answers "+allow+" only.")
}
