package web

import (
	"fmt"
	"html/template"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
)

// pageNames are the page templates; each is parsed with the layout.
var pageNames = []string{"error", "login", "overview", "repositories", "repository", "image", "log", "audit", "search", "quarantine"}

func (ui *UI) parseTemplates() error {
	funcs := template.FuncMap{
		"badge":     badgeClass,
		"short":     shortDigest,
		"when":      func(t time.Time) string { return formatTime(t, ui.cfg.Now()) },
		"timestamp": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"size":      humanSize,
		"repoURL":   repoURL,
		"imageURL":  imageURL,
		"safeLink":  safeLink,
		"join":      strings.Join,
		"add":       func(a, b int) int { return a + b },
		"query":     func(kv ...string) string { return queryString(kv...) },
	}
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(funcs).ParseFS(uiFiles, "ui/templates/layout.html", "ui/templates/"+name+".html")
		if err != nil {
			return fmt.Errorf("web: console template %s: %w", name, err)
		}
		ui.pages[name] = t
	}
	return nil
}

// shortDigest is "sha256:0123456789ab" (12 hex digits).
func shortDigest(d digest.Digest) string {
	s := d.String()
	if i := strings.IndexByte(s, ':'); i >= 0 && len(s) > i+13 {
		return s[:i+13]
	}
	return s
}

// formatTime says how long ago t was, to the visitor; the full time is in
// the element's title.
func formatTime(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return t.UTC().Format("2006-01-02 15:04 UTC")
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 24*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	case d < 30*24*time.Hour:
		return fmt.Sprintf("%d days ago", int(d.Hours()/24))
	}
	return t.UTC().Format("2006-01-02")
}

func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// repoURL is the console page of a repository.
func repoURL(repo string) string { return UIPath + "repo/" + escapePath(repo) }

// imageURL is the console page of an image.
func imageURL(repo string, d digest.Digest) string {
	return UIPath + "image/" + escapePath(repo) + "@" + url.PathEscape(d.String())
}

// escapePath escapes each segment of a repository path.
func escapePath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return path.Join(segs...)
}

// safeLink returns u if it is an absolute http(s) URL (links built from
// signed annotations or certificates must not become javascript: or data:
// links), else "".
func safeLink(u string) string {
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" {
		return ""
	}
	return p.String()
}

// queryString builds "?k=v&..." from pairs, leaving out empty values.
func queryString(kv ...string) string {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			q.Set(kv[i], kv[i+1])
		}
	}
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}
