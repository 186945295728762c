package web

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/hallmark-dev/hallmark/internal/auth"
)

// maxFormBody bounds the console's form bodies (sign-in, sign-out).
const maxFormBody = 8 << 10

// sameOrigin checks that a POST comes from the console's own pages: the
// browser's Sec-Fetch-Site says same-origin (or none: typed by the user),
// and an Origin header, when sent, is the server's. Requests without
// either (old browsers, scripts) are left to the CSRF token.
func (ui *UI) sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return false
	}
	if o := r.Header.Get("Origin"); o != "" && o != ui.origin {
		return false
	}
	return true
}

// readForm parses a bounded urlencoded form; false when it has answered.
func (ui *UI) readForm(w http.ResponseWriter, r *http.Request, v *Visitor) bool {
	return ui.readFormN(w, r, v, maxFormBody)
}

// readFormN is readForm with a bound of its own (limit bytes).
func (ui *UI) readFormN(w http.ResponseWriter, r *http.Request, v *Visitor, limit int64) bool {
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			// Close rather than read the rest of the body to keep the
			// connection (net/http would wait for up to 256 KiB more).
			w.Header().Set("Connection", "close")
			ui.errorPage(w, r, v, http.StatusRequestEntityTooLarge, "Form too large", "The form is larger than "+strconv.FormatInt(limit, 10)+" bytes.")
			return false
		}
		ui.badRequest(w, r, v, "The form could not be read.")
		return false
	}
	return true
}

func (ui *UI) forbiddenPost(w http.ResponseWriter, r *http.Request, v *Visitor) {
	ui.errorPage(w, r, v, http.StatusForbidden, "Request refused",
		"The form was not sent from this console's own page (missing or wrong CSRF token, or another site). Reload the page and try again.")
}

type loginData struct {
	User  string
	Next  string
	Token string
	Error string
}

// login serves GET (the form) and POST (sign-in) /ui/login.
func (ui *UI) login(w http.ResponseWriter, r *http.Request, v *Visitor) {
	a := ui.cfg.Auth
	if a == nil {
		ui.notFound(w, r, v, "This server runs without access control (--auth=off): there is nothing to sign in to.")
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		tok := auth.NewCSRFToken()
		ui.setCookie(w, loginCookie, tok, 3600)
		ui.render(w, r, http.StatusOK, "login", page{Title: "Sign in", V: v, Data: loginData{Next: localNext(r.URL.Query().Get("next")), Token: tok}})
		return
	case http.MethodPost:
	default:
		ui.methodNotAllowed(w, r, v, "GET, POST")
		return
	}
	if !ui.readForm(w, r, v) {
		return
	}
	c, err := r.Cookie(loginCookie)
	if !ui.sameOrigin(r) || err != nil || c.Value == "" || subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostForm.Get("csrf"))) != 1 {
		ui.forbiddenPost(w, r, v)
		return
	}
	user, secret, next := strings.TrimSpace(r.PostForm.Get("user")), r.PostForm.Get("password"), localNext(r.PostForm.Get("next"))
	again := func(status int, msg string) {
		tok := auth.NewCSRFToken()
		ui.setCookie(w, loginCookie, tok, 3600)
		ui.render(w, r, status, "login", page{Title: "Sign in", V: v, Data: loginData{User: user, Next: next, Token: tok, Error: msg}})
	}
	if user == "" || secret == "" {
		again(http.StatusBadRequest, "Enter your user name and your password or personal access token.")
		return
	}
	remote := a.ClientAddr(r)
	if old, err := r.Cookie(sessionCookie); err == nil && old.Value != "" {
		// A new sign-in ends the session the browser had (never adopted).
		if err := a.Sessions.Logout(r.Context(), old.Value, remote); err != nil {
			ui.log.WarnContext(r.Context(), "ending the previous console session", "err", err)
		}
	}
	id, _, _, err := a.Sessions.Login(r.Context(), user, secret, remote)
	var throttled *auth.ThrottledError
	switch {
	case errors.As(err, &throttled):
		w.Header().Set("Retry-After", strconv.Itoa(int(throttled.RetryAfter.Seconds())+1))
		again(http.StatusTooManyRequests, "Too many failed sign-ins from here; wait "+throttled.RetryAfter.Round(1e9).String()+" and try again.")
		return
	case errors.Is(err, auth.ErrBadCredentials):
		again(http.StatusUnauthorized, "Invalid user name, password or personal access token.")
		return
	case err != nil:
		ui.internalError(w, r, v, err)
		return
	}
	ui.setCookie(w, loginCookie, "", -1)
	ui.setCookie(w, sessionCookie, id, 0)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// logout serves POST /ui/logout.
func (ui *UI) logout(w http.ResponseWriter, r *http.Request, v *Visitor) {
	a := ui.cfg.Auth
	if a == nil {
		ui.notFound(w, r, v, "This server runs without access control (--auth=off): there is nothing to sign out of.")
		return
	}
	if r.Method != http.MethodPost {
		ui.methodNotAllowed(w, r, v, "POST")
		return
	}
	if !ui.readForm(w, r, v) {
		return
	}
	if !v.SignedIn {
		http.Redirect(w, r, UIPath, http.StatusSeeOther)
		return
	}
	if !ui.sameOrigin(r) || !auth.ValidCSRF(v.sess, r.PostForm.Get("csrf")) {
		ui.forbiddenPost(w, r, v)
		return
	}
	if c, err := r.Cookie(sessionCookie); err == nil {
		if err := a.Sessions.Logout(r.Context(), c.Value, a.ClientAddr(r)); err != nil {
			ui.internalError(w, r, v, err)
			return
		}
	}
	ui.setCookie(w, sessionCookie, "", -1)
	http.Redirect(w, r, UIPath, http.StatusSeeOther)
}

// localNext keeps a post-sign-in redirect on the console ("/ui/..." and
// nothing that a browser would read as another host).
func localNext(next string) string {
	if !strings.HasPrefix(next, UIPath) || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return UIPath
	}
	return next
}
