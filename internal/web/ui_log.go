package web

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/internal/tlog"
	"github.com/hallmark-dev/hallmark/pkg/fulcio"
	"github.com/hallmark-dev/hallmark/pkg/verify"
)

type logData struct {
	Head    *logHead
	Query   string
	Entry   *entryView
	Body    []kv
	Signs   []meta.Signature
	LogID   string
	Missing string
}

// logPage serves /ui/log?q=<index or UUID>.
func (ui *UI) logPage(w http.ResponseWriter, r *http.Request, v *Visitor) {
	ctx := r.Context()
	if ui.tlog == nil {
		ui.notFound(w, r, v, "This server has no transparency log.")
		return
	}
	head, err := ui.logHead(ctx)
	if err != nil {
		ui.internalError(w, r, v, err)
		return
	}
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	d := logData{Head: head, Query: q}
	if q == "" {
		ui.render(w, r, http.StatusOK, "log", page{Title: "Transparency log", Nav: "log", V: v, Data: d})
		return
	}
	var e *tlog.LogEntry
	if n, perr := strconv.ParseUint(q, 10, 63); perr == nil {
		e, err = ui.tlog.EntryByIndex(ctx, n)
	} else if len(q) == 64 || len(q) == 80 {
		e, err = ui.tlog.EntryByUUID(ctx, q)
	} else {
		ui.badRequest(w, r, v, "Look an entry up by its log index (a number) or its UUID (64 or 80 hex digits).")
		return
	}
	switch {
	case errors.Is(err, tlog.ErrNotFound):
		d.Missing = "The log has no entry " + q + "."
		ui.render(w, r, http.StatusNotFound, "log", page{Title: "Transparency log", Nav: "log", V: v, Data: d})
		return
	case errors.Is(err, tlog.ErrBadRequest):
		ui.badRequest(w, r, v, err.Error())
		return
	case err != nil:
		ui.internalError(w, r, v, err)
		return
	}
	d.Entry = ui.entryCheck(e, nil)
	d.Body = entryBody(e.Body)
	sigs, err := ui.store.SignaturesByLogIndex(ctx, int64(e.Index), 20)
	if err == nil {
		d.Signs, err = visible(ctx, v, sigs, func(s meta.Signature) string { return s.Repository }, len(sigs))
	}
	if err != nil {
		ui.internalError(w, r, v, err)
		return
	}
	ui.render(w, r, http.StatusOK, "log", page{Title: "Log entry " + strconv.FormatUint(e.Index, 10), Nav: "log", V: v, Data: d})
}

// entryBody decodes the fields of a hashedrekord or dsse entry worth
// reading: what was signed, and by whom.
func entryBody(body []byte) []kv {
	var e struct {
		Kind       string `json:"kind"`
		APIVersion string `json:"apiVersion"`
		Spec       struct {
			Data struct {
				Hash struct{ Algorithm, Value string } `json:"hash"`
			} `json:"data"`
			Signature struct {
				PublicKey struct {
					Content string `json:"content"`
				} `json:"publicKey"`
			} `json:"signature"`
			PayloadHash struct{ Algorithm, Value string } `json:"payloadHash"`
			Signatures  []struct {
				Verifier string `json:"verifier"`
			} `json:"signatures"`
		} `json:"spec"`
	}
	if json.Unmarshal(body, &e) != nil {
		return []kv{{"body", "not JSON"}}
	}
	out := []kv{{"kind", e.Kind + " " + e.APIVersion}}
	var verifier string
	switch e.Kind {
	case "hashedrekord":
		out = append(out, kv{"signed content", e.Spec.Data.Hash.Algorithm + ":" + e.Spec.Data.Hash.Value})
		verifier = e.Spec.Signature.PublicKey.Content
	case "dsse":
		out = append(out, kv{"signed payload", e.Spec.PayloadHash.Algorithm + ":" + e.Spec.PayloadHash.Value})
		if len(e.Spec.Signatures) > 0 {
			verifier = e.Spec.Signatures[0].Verifier
		}
	}
	if pemBytes, err := base64.StdEncoding.DecodeString(verifier); err == nil && len(pemBytes) > 0 {
		if c, err := verify.ParseCertificatePEM(pemBytes); err == nil {
			if sans := fulcio.SubjectAlternativeNames(c); len(sans) > 0 {
				out = append(out, kv{"certificate identity", sans[0]})
			}
			out = append(out, kv{"certificate issuer (OIDC)", fulcio.Issuer(c)},
				kv{"certificate valid", c.NotBefore.UTC().Format("2006-01-02 15:04:05") + " to " + c.NotAfter.UTC().Format("15:04:05 UTC")})
		} else if k, err := verify.ParsePublicKey(pemBytes); err == nil {
			if fp, err := verify.Fingerprint(k); err == nil {
				out = append(out, kv{"public key", fp})
			}
		}
	}
	return out
}

type auditData struct {
	Events                   []auth.AuditEvent
	Action, Repository, User string
	Since                    string
	Next                     int64
	Actions                  []string
}

var auditActions = []string{auth.AuditPush, auth.AuditSign, auth.AuditDelete, auth.AuditLoginFailed, auth.AuditInvalidToken,
	auth.AuditThrottled, auth.AuditDenied, auth.AuditSessionLogin, auth.AuditSessionLogout}

// audit serves /ui/audit (admins).
func (ui *UI) audit(w http.ResponseWriter, r *http.Request, v *Visitor) {
	a := ui.cfg.Auth
	if a == nil || a.Audit == nil {
		ui.notFound(w, r, v, "The audit log needs access control (--auth=on).")
		return
	}
	if !v.Admin() {
		msg := "The audit log is for admins."
		if !v.SignedIn {
			msg += " Sign in as an admin to see it."
		}
		ui.errorPage(w, r, v, http.StatusForbidden, "Forbidden", msg)
		return
	}
	q := r.URL.Query()
	aq, err := auth.ParseAuditQuery(q, ui.cfg.Now())
	if err != nil {
		ui.badRequest(w, r, v, err.Error())
		return
	}
	if q.Get("limit") == "" {
		aq.Limit = pageRows
	}
	evs, err := a.Audit(r.Context(), aq)
	if err != nil {
		ui.internalError(w, r, v, err)
		return
	}
	d := auditData{Events: evs, Action: aq.Action, Repository: aq.Repository, User: aq.Actor, Since: q.Get("since"), Actions: auditActions}
	if len(evs) == aq.Limit && len(evs) > 0 {
		d.Next = evs[len(evs)-1].ID
	}
	ui.render(w, r, http.StatusOK, "audit", page{Title: "Audit log", Nav: "audit", V: v, Data: d})
}
