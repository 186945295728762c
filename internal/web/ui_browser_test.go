package web_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/hallmark-dev/hallmark/internal/testenv"
)

// One Chromium per test package (Debian's chromium, installed by
// scripts/install-peers all), started on first use.
var (
	browserOnce   sync.Once
	browserCtx    context.Context
	browserCancel func()
	browserDir    string
)

func stopBrowser() {
	if browserCancel != nil {
		browserCancel()
		os.RemoveAll(browserDir)
	}
}

// browser returns a new tab in a fresh browser context (its own cookies:
// another visitor), closed with the test.
func browser(t *testing.T) context.Context {
	t.Helper()
	exe := testenv.Peer(t, "chromium")
	browserOnce.Do(func() {
		browserDir, _ = os.MkdirTemp("", "hallmark-chromium-")
		opts := append([]chromedp.ExecAllocatorOption{}, chromedp.DefaultExecAllocatorOptions[:]...)
		opts = append(opts, chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.Headless, chromedp.DisableGPU,
			chromedp.UserDataDir(browserDir), chromedp.WindowSize(1360, 900),
			chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
			chromedp.Flag("disable-sync", true), chromedp.Flag("no-first-run", true), chromedp.Flag("hide-scrollbars", true))
		alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
		ctx, cancelBrowser := chromedp.NewContext(alloc)
		browserCtx = ctx
		browserCancel = func() { cancelBrowser(); cancelAlloc() }
	})
	if err := chromedp.Do(browserCtx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	tab, cancel := chromedp.NewContext(browserCtx, chromedp.WithNewBrowserContext())
	tab, cancelTimeout := context.WithTimeout(tab, 2*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancel() })
	return tab
}

// screenshotDir is where the browser tests save their screenshots:
// $HALLMARK_SCREENSHOTS, else a directory under the system's temp dir.
func screenshotDir(t *testing.T) string {
	dir := os.Getenv("HALLMARK_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "hallmark-console-screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	p := filepath.Join(screenshotDir(t), name)
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", p)
}

func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func get[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// signIn signs user in through the console's sign-in form.
func signIn(t *testing.T, ctx context.Context, e *consoleEnv, user string) {
	t.Helper()
	do(t, ctx, "sign in as "+user,
		chromedp.Navigate(e.URL+"/ui/login"),
		chromedp.WaitVisible(chromedp.ID("user")),
		chromedp.SendKeys(chromedp.ID("user"), user),
		chromedp.SendKeys(chromedp.ID("password"), e.Passwords[user]),
		chromedp.Submit(chromedp.ID("password")),
		chromedp.WaitVisible(chromedp.ID("signed-in-user")),
	)
}

// TestConsoleInBrowser drives the console in Chromium: sign in; the
// repository page shows the verified badge and the commit link of the
// keylessly signed image; the image page shows the eleven annotations
// with their marks, the log entry with its proof checked, and a
// contradicted annotation flagged; an anonymous visitor cannot see the
// private project.
func TestConsoleInBrowser(t *testing.T) {
	e := sharedEnv(t)
	ctx := browser(t)

	// Sign in through the form (bob: a reporter of the private project).
	signIn(t, ctx, e, "bob")
	if who := get(t, ctx, "user", chromedp.Text(chromedp.ID("signed-in-user"))); who != "bob" {
		t.Fatalf("signed in as %q", who)
	}
	screenshot(t, ctx, "console-overview.png")

	// Repository: the signed tag's row has the verified badge and the
	// commit link the certificate attests.
	row := `//tr[td/strong[text()="` + e.Tag + `"]]`
	do(t, ctx, "repository page", chromedp.Navigate(e.URL+"/ui/repo/demo/app"), chromedp.WaitVisible(chromedp.Search(row)))
	if badge := get(t, ctx, "badge", chromedp.Text(chromedp.Search(row+`//span[@data-status]`))); !strings.Contains(badge, "verified") {
		t.Errorf("badge of %s: %q", e.Tag, badge)
	}
	href := get(t, ctx, "commit link", chromedp.AttributeValue(chromedp.Search(row+`//a[contains(@class,"commit")]`), "href"))
	if want := e.URL + "/demo/app/-/commit/" + e.Commit; href.Value != want {
		t.Errorf("commit link %q, want %q", href.Value, want)
	}
	screenshot(t, ctx, "console-repository.png")

	// The status filter submits itself (app.js) and keeps unsigned images.
	// (Chromium's select change event: SetValue fires it, as a person
	// picking an option does.)
	do(t, ctx, "status filter",
		chromedp.SetValue(chromedp.ID("status"), "unsigned"),
		chromedp.WaitVisible(chromedp.Search(`//td/strong[text()="unsigned"]`)),
	)
	if loc := get(t, ctx, "location", chromedp.Location()); !strings.HasSuffix(loc, "?status=unsigned") {
		t.Errorf("after choosing a status the page is %s", loc)
	}

	// Image: eleven annotations, each marked; the proof checked.
	do(t, ctx, "image page", chromedp.Navigate(e.URL+imagePath(e.Signed)), chromedp.WaitVisible(chromedp.ID("image-status")))
	if status := get(t, ctx, "status", chromedp.Text(chromedp.ID("image-status"))); !strings.Contains(status, "verified") {
		t.Errorf("image status %q", status)
	}
	marks := get(t, ctx, "marks", chromedp.Nodes(chromedp.Search(`(//article[contains(@class,"sig")])[1]//table[contains(@class,"ann")]//span[@data-mark]`), chromedp.AtLeast(0)))
	if len(marks) != 11 {
		t.Errorf("%d marked annotations, want the eleven", len(marks))
	}
	attested := 0
	for _, n := range marks {
		if n.AttributeValue("data-mark") == "attested" {
			attested++
		}
	}
	if attested < 7 {
		t.Errorf("%d annotations attested by the certificate", attested)
	}
	if proof := get(t, ctx, "proof", chromedp.Text(chromedp.Search(`(//span[@data-proof])[1]`))); !strings.Contains(proof, "checked") {
		t.Errorf("inclusion proof: %q", proof)
	}
	if hidden := get(t, ctx, "copy button", chromedp.Evaluate[bool](`document.querySelector("button.copy").hidden`)); hidden {
		t.Error("the copy buttons stay hidden with JavaScript on")
	}
	screenshot(t, ctx, "console-image.png")

	// The contradicted annotation is flagged with the certificate's value.
	bad := `(//tr[contains(@class,"mark-contradicted")])[1]`
	do(t, ctx, "contradicted image", chromedp.Navigate(e.URL+imagePath(e.Contradicted)), chromedp.WaitVisible(chromedp.Search(bad)))
	if flagged := get(t, ctx, "contradicted row", chromedp.Text(chromedp.Search(bad))); !strings.Contains(flagged, FakeCommit) ||
		!strings.Contains(flagged, e.Commit) || !strings.Contains(flagged, "contradicted") {
		t.Errorf("contradicted row: %q", flagged)
	}
	screenshot(t, ctx, "console-contradicted.png")

	// bob sees the private project...
	do(t, ctx, "private repository as a member", chromedp.Navigate(e.URL+"/ui/repo/secret/app"))
	if title := get(t, ctx, "title", chromedp.Text(chromedp.CSS("h1"))); title != "secret/app" {
		t.Errorf("bob's private repository page: %q", title)
	}
	// ...an anonymous visitor (another browser context) does not.
	anon := browser(t)
	do(t, anon, "private repository, anonymous", chromedp.Navigate(e.URL+"/ui/repo/secret/app"))
	if heading := get(t, anon, "heading", chromedp.Text(chromedp.CSS("h1"))); heading != "Not found" {
		t.Errorf("anonymous visitor on the private repository sees %q", heading)
	}
	do(t, anon, "repositories, anonymous", chromedp.Navigate(e.URL+"/ui/repositories"))
	if list := get(t, anon, "list", chromedp.Text(chromedp.CSS("main"))); strings.Contains(list, "secret/app") || !strings.Contains(list, "demo/app") {
		t.Errorf("anonymous repositories page: %q", list)
	}
	screenshot(t, anon, "console-anonymous-repositories.png")

	// Sign out.
	do(t, ctx, "sign out",
		chromedp.Navigate(e.URL+"/ui/"),
		chromedp.Click(chromedp.Search(`//button[text()="Sign out"]`)),
		chromedp.WaitVisible(chromedp.Search(`//a[text()="Sign in"]`)),
	)
}

// TestConsoleSearchInBrowser drives the search page in Chromium as a
// maintainer of the public project: search by commit and by runner (the
// CA's claim) finds the keylessly signed image; the CSV export downloads
// and parses; quarantining the image from the search page makes crane
// (and docker, when an engine is available) fail to pull it with the
// reason; lifting it from the image page makes the pulls work again.
func TestConsoleSearchInBrowser(t *testing.T) {
	e := sharedEnv(t)
	crane := testenv.Peer(t, "crane")
	ctx := browser(t)
	signed := e.Signed.DigestStr()
	result := `a.digest-link[title="` + signed + `"]`

	signIn(t, ctx, e, "carol")

	// By runner: only the CA's record of the job's token knows it.
	do(t, ctx, "search by runner",
		chromedp.Click(chromedp.Search(`//nav//a[text()="Search"]`)),
		chromedp.WaitVisible(chromedp.ID("f-runner")),
		chromedp.SendKeys(chromedp.ID("f-runner"), "1"),
		chromedp.SetValue(chromedp.ID("f-limit"), "100"),
		chromedp.Click(chromedp.ID("search-submit")),
		chromedp.WaitVisible(chromedp.ID("results")),
	)
	if n := get(t, ctx, "runner results", chromedp.Nodes(chromedp.CSS(result), chromedp.AtLeast(0))); len(n) == 0 {
		t.Errorf("the search by runner does not find %s", signed)
	}
	if basis := get(t, ctx, "runner match", chromedp.Text(chromedp.CSS(`.match[data-basis="ca-claims"]`))); !strings.Contains(basis, "runner") {
		t.Errorf("runner match: %q", basis)
	}

	// By commit.
	do(t, ctx, "search by commit",
		chromedp.Navigate(e.URL+"/ui/search"),
		chromedp.WaitVisible(chromedp.ID("f-commit")),
		chromedp.SendKeys(chromedp.ID("f-commit"), e.Commit),
		chromedp.SetValue(chromedp.ID("f-limit"), "50"),
		chromedp.Click(chromedp.ID("search-submit")),
		chromedp.WaitVisible(chromedp.ID("results")),
		chromedp.WaitVisible(chromedp.CSS(result)),
	)
	screenshot(t, ctx, "console-search.png")

	// The CSV export downloads and parses.
	dir := t.TempDir()
	progress := chromedp.Events(ctx, cdpbrowser.DownloadProgress)
	do(t, ctx, "export CSV",
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			// This tab's browser context (each test visitor has its own).
			_, err := chromedp.Call(ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
				Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dir, EventsEnabled: new(true),
				BrowserContextID: chromedp.FromContext(ctx).BrowserContextID})
			return err
		}),
		chromedp.Click(chromedp.ID("export-csv")),
	)
	var file string
	for ev, err := range progress {
		if err != nil {
			t.Fatalf("download: %v", err)
		}
		if ev.State == cdpbrowser.DownloadProgressStateCanceled {
			t.Fatal("the CSV download was canceled")
		}
		if ev.State == cdpbrowser.DownloadProgressStateCompleted {
			file = filepath.Join(dir, ev.GUID)
			break
		}
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(bytes.NewReader(raw)).ReadAll()
	if err != nil || len(recs) < 2 || recs[0][2] != "image_digest" || recs[0][12] != "commit" {
		t.Fatalf("the downloaded CSV (%v):\n%s", err, raw)
	}
	rows := 0
	for _, r := range recs[1:] {
		if r[12] != e.Commit {
			t.Errorf("CSV row of another commit: %v", r)
		}
		if r[1] == e.PublicRepo && r[2] == signed && r[4] == "verified" {
			rows++
		}
	}
	if rows == 0 {
		t.Errorf("no verified row of %s in the CSV:\n%s", signed, raw)
	}

	// Quarantine it from the search page.
	ref := strings.TrimPrefix(e.URL, "http://") + "/" + e.PublicRepo + "@" + signed
	const reason = "INC-7 runner 1 was compromised"
	do(t, ctx, "quarantine",
		chromedp.Click(chromedp.CSS(`input[name="item"][value="`+e.PublicRepo+"@"+signed+`"]`)),
		chromedp.SendKeys(chromedp.ID("reason"), reason),
		chromedp.Click(chromedp.ID("quarantine-selected")),
		chromedp.WaitVisible(chromedp.ID("quarantine-summary")),
	)
	if s := get(t, ctx, "summary", chromedp.Text(chromedp.ID("quarantine-summary"))); !strings.Contains(s, "Quarantined: 1") || !strings.Contains(s, "refused: 0") {
		t.Errorf("quarantine summary: %q", s)
	}
	screenshot(t, ctx, "console-quarantine.png")
	home := t.TempDir()
	env := testenv.ToolEnv(t, home, true, "LANG=C.UTF-8")
	pull := func() (string, error) {
		return testenv.RunTool(t, home, env, "", crane, "manifest", "--insecure", ref)
	}
	if out, err := pull(); err == nil || !strings.Contains(out, "DENIED") || !strings.Contains(out, reason) {
		t.Errorf("crane manifest of the quarantined image: %v\n%s", err, out)
	}
	docker := dockerPull(t, ref)
	if docker != nil {
		if out, ok := docker(); ok || !strings.Contains(out, reason) {
			t.Errorf("docker pull of the quarantined image: ok=%v\n%s", ok, out)
		}
	}

	// Lift it from the image page.
	do(t, ctx, "lift",
		chromedp.Click(chromedp.CSS(`a[href$="`+url.PathEscape(signed)+`"]`)),
		chromedp.WaitVisible(chromedp.ID("quarantine-status")),
	)
	if r := get(t, ctx, "reason", chromedp.Text(chromedp.ID("quarantine-reason"))); r != reason {
		t.Errorf("image page quarantine reason %q", r)
	}
	screenshot(t, ctx, "console-image-quarantined.png")
	do(t, ctx, "lift",
		chromedp.Click(chromedp.ID("lift")),
		chromedp.WaitVisible(chromedp.ID("quarantine-summary")),
	)
	if s := get(t, ctx, "summary", chromedp.Text(chromedp.ID("quarantine-summary"))); !strings.Contains(s, "Lifted: 1") {
		t.Errorf("lift summary: %q", s)
	}
	if out, err := pull(); err != nil {
		t.Errorf("crane manifest after the lift: %v\n%s", err, out)
	}
	if docker != nil {
		if out, ok := docker(); !ok {
			t.Errorf("docker pull after the lift:\n%s", out)
		}
	}
}

// dockerPull returns a function pulling ref with docker (and removing the
// image again), or nil when no Docker engine is available (then docker is
// not tested; a failure under HALLMARK_REQUIRE_DOCKER=1).
func dockerPull(t *testing.T, ref string) func() (string, bool) {
	host, why := testenv.LookDocker()
	if host == "" {
		if testenv.RequireDocker() {
			t.Fatal("no Docker engine (HALLMARK_REQUIRE_DOCKER=1): " + why)
		}
		t.Log("NO DOCKER ENGINE, DOCKER PULL OF A QUARANTINED IMAGE NOT TESTED (crane is): " + why)
		return nil
	}
	docker, err := exec.LookPath("docker")
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	env := testenv.ToolEnv(t, home, true, "DOCKER_HOST="+host, "LANG=C.UTF-8")
	return func() (string, bool) {
		out, err := testenv.RunTool(t, home, env, "", docker, "pull", ref)
		if err == nil {
			testenv.RunTool(t, home, env, "", docker, "rmi", "-f", ref)
		}
		return out, err == nil
	}
}
