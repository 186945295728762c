package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/hallmark-dev/hallmark/internal/config"
	"github.com/hallmark-dev/hallmark/internal/demo"
	"github.com/hallmark-dev/hallmark/internal/server"
	"github.com/hallmark-dev/hallmark/pkg/root"
)

// demoOptions are the flags of `hallmark demo`.
type demoOptions struct {
	addr     string
	dataDir  string
	once     bool
	project  string
	logLevel string
}

// DefaultDemoDataDir is where `hallmark demo` keeps its server's data. It
// persists, so the keys (and the trusted root's fingerprint) stay the same
// from one run to the next.
const DefaultDemoDataDir = "./hallmark-demo-data"

func newDemoCmd() *cobra.Command {
	o := &demoOptions{}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole workflow locally: server, CI job, push, keyless sign with provenance, verify, search",
		Long: `Start a Hallmark server in this process (registry with access control on, built-in OIDC
issuer, certificate authority, transparency log) on the embedded defaults, then do what the
reference GitLab pipeline does, without Docker or network access:

  1. start the server on --addr with its data in --data-dir
  2. get a CI job of --project on main from the server: a CI job token and an ID token
     (SIGSTORE_ID_TOKEN) of the built-in issuer, and GitLab's predefined variables
  3. pin the server's trusted root by its fingerprint, as 'hallmark trust init' does
  4. build a small image in memory (one file, FROM scratch)
  5. push it as $CI_REGISTRY_IMAGE:$CI_COMMIT_SHORT_SHA with the job token
  6. sign it keylessly with the eleven GitLab provenance annotations (--ci-annotations)
  7. verify it with --certificate-identity "$CI_PROJECT_URL//.gitlab-ci.yml@refs/heads/main",
     --certificate-oidc-issuer "$CI_SERVER_URL" and -a tag=$CI_COMMIT_SHORT_SHA
  8. search the provenance index by commit

Progress goes to standard error; the verification JSON (what 'hallmark verify' prints) and the
search result (the API's JSON) go to standard output. Then the server keeps serving and the
URLs and the exact hallmark, cosign, curl and docker commands to try next are printed;
Ctrl-C stops it. With --once it stops after the run (exit status 0 when every step passed).

Every run makes a new commit and image; the data dir persists, so a second run works too and
the trusted root's fingerprint stays the same for the same --addr.`,
		Example: `  go run ./cmd/hallmark demo
  hallmark demo --once
  hallmark demo --addr 127.0.0.1:5050 --data-dir /tmp/hallmark-demo`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return o.run(ctx, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.addr, "addr", "127.0.0.1:5000", "listen address of the demo server (a loopback address; port 0 picks a free one)")
	fs.StringVar(&o.dataDir, "data-dir", DefaultDemoDataDir, "directory for the demo server's blobs, database and keys (kept between runs)")
	fs.BoolVar(&o.once, "once", false, "stop the server after the run instead of serving until Ctrl-C")
	fs.StringVar(&o.project, "project", "demo/app", "project (group/name) of the demo CI job")
	fs.StringVar(&o.logLevel, "log-level", "warn", "server log level: debug, info, warn or error")
	return cmd
}

// demoRun is one `hallmark demo` run.
type demoRun struct {
	o      *demoOptions
	stdout io.Writer
	stderr io.Writer
	step   int
}

const demoSteps = 8

func (r *demoRun) begin(format string, a ...any) {
	r.step++
	fmt.Fprintf(r.stderr, "[%d/%d] %s\n", r.step, demoSteps, fmt.Sprintf(format, a...))
}

func (r *demoRun) detail(format string, a ...any) {
	fmt.Fprintf(r.stderr, "      %s\n", fmt.Sprintf(format, a...))
}

// fail wraps a step's error with the step.
func (r *demoRun) fail(what string, err error) error {
	return fmt.Errorf("demo step %d/%d (%s) failed: %w", r.step, demoSteps, what, err)
}

// demoOutcome is what the run made, for the closing summary.
type demoOutcome struct {
	srvURL      string
	host        string // registry host:port
	dataDir     string
	fingerprint string
	image       string // repo@digest
	tag         string
	identity    string
	issuer      string
	commit      string
	project     string
	console     string // the console page of the signed image
}

func (o *demoOptions) run(ctx context.Context, stdout, stderr io.Writer) error {
	r := &demoRun{o: o, stdout: stdout, stderr: stderr}
	dataDir, err := filepath.Abs(o.dataDir)
	if err != nil {
		return err
	}
	cfg := config.Defaults()
	cfg.Addr, cfg.DataDir, cfg.Auth = o.addr, dataDir, "on"
	cfg.LogLevel, cfg.LogFormat = o.logLevel, "text"
	cfg.ShutdownTimeout = 5 * time.Second
	if !config.IsLoopback(cfg.Addr) {
		return fmt.Errorf("--addr %s: the demo serves plain HTTP and only listens on a loopback address (e.g. 127.0.0.1:5050); run 'hallmark server' with TLS for anything else", o.addr)
	}

	r.begin("Starting the Hallmark server (registry with auth on, OIDC issuer, CA, transparency log) on %s", o.addr)
	log := newLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	srv, err := server.New(ctx, cfg, log)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return r.fail("starting the server", fmt.Errorf("%s is already in use (is another hallmark demo or server running?): stop it, or pick another address with --addr, e.g. --addr 127.0.0.1:5050 (port 0 picks a free one): %w", o.addr, err))
		}
		return r.fail("starting the server", err)
	}
	srvCtx, stopServer := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- srv.Run(srvCtx, nil) }()
	shutdown := func() error {
		stopServer()
		err := <-served
		srv.Close()
		if errors.Is(err, context.Canceled) {
			err = nil
		}
		return err
	}
	r.detail("%s, data in %s", srv.URL(), dataDir)

	out, err := r.pipeline(ctx, srv, dataDir)
	if err != nil {
		shutdown()
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted: %w", err)
		}
		return err
	}
	if o.once {
		if err := shutdown(); err != nil {
			return fmt.Errorf("stopping the demo server: %w", err)
		}
		fmt.Fprintf(stderr, "\nDemo complete: every step passed. The server has stopped (--once).\n")
		fmt.Fprintf(stderr, "Serve the same data again with\n  %s server --addr %s --data-dir %s\n(or run the demo without --once) and try:\n",
			selfCommand(), out.host, shellQuote(dataDir))
		printDemoNext(stderr, out, false)
		return nil
	}
	printDemoNext(stderr, out, true)
	select {
	case err := <-served:
		srv.Close()
		return fmt.Errorf("the demo server stopped: %w", err)
	case <-ctx.Done():
	}
	fmt.Fprintln(stderr, "\nStopping the demo server...")
	if err := shutdown(); err != nil {
		return fmt.Errorf("stopping the demo server: %w", err)
	}
	return nil
}

// pipeline runs steps 2..8 against the running server.
func (r *demoRun) pipeline(ctx context.Context, srv *server.Server, dataDir string) (*demoOutcome, error) {
	r.begin("Getting a CI job of %s on main from the server (CI job token, ID token of the built-in issuer)", r.o.project)
	env, err := srv.CIJob(ctx, server.CIJobRequest{Project: r.o.project, Ref: "main", User: "demo", UserName: "Demo User"})
	if err != nil {
		return nil, r.fail("CI job", err)
	}
	r.detail("CI_PROJECT_URL=%s CI_COMMIT_SHA=%s CI_PIPELINE_ID=%s CI_JOB_ID=%s", env["CI_PROJECT_URL"], env["CI_COMMIT_SHA"], env["CI_PIPELINE_ID"], env["CI_JOB_ID"])

	r.begin("Pinning the server's trusted root (CA, CT log and transparency log keys) by its fingerprint")
	client := &http.Client{Transport: demo.NewTransport(), Timeout: time.Minute}
	trust, err := demo.FetchTrust(ctx, client, env["HALLMARK_URL"], env["HALLMARK_TRUST_FINGERPRINT"])
	if err != nil {
		return nil, r.fail("trusted root", err)
	}
	r.detail("%s%s sha256=%s", env["HALLMARK_URL"], demo.TrustedRootPath, trust.Fingerprint)
	sess, err := demo.NewSession(env, demo.SessionConfig{Trust: trust})
	if err != nil {
		return nil, r.fail("CI job", err)
	}

	r.begin("Building a small image in memory (one file, FROM scratch)")
	img, err := demo.BuildImage(env, "")
	if err != nil {
		return nil, r.fail("building the image", err)
	}
	tag := sess.Tag("")
	image := env["CI_REGISTRY_IMAGE"] + ":" + tag

	r.begin("Pushing %s as %s with the CI job token", image, demo.CIRegistryUser)
	ref, err := sess.Push(ctx, img, tag)
	if err != nil {
		return nil, r.fail("push", err)
	}
	r.detail("%s", ref)

	r.begin("Signing keylessly with the eleven CI provenance annotations (certificate from the CA, entry in the log)")
	signed, err := sess.Sign(ctx, ref, tag)
	if err != nil {
		return nil, r.fail("keyless signing", err)
	}
	r.detail("certificate identity %s, issuer %s", sess.Identity(), sess.Issuer())
	r.detail("transparency log index %d; signature stored at %s", signed.LogIndex, ref.Context().Tag(strings.Replace(ref.DigestStr(), ":", "-", 1)+".sig"))

	r.begin("Verifying: --certificate-identity %s --certificate-oidc-issuer %s -a tag=%s", sess.Identity(), sess.Issuer(), tag)
	res, err := sess.Verify(ctx, ref, tag)
	if err != nil {
		return nil, r.fail("verification", err)
	}
	vj, err := demo.VerificationJSON(res)
	if err != nil {
		return nil, r.fail("verification", err)
	}
	r.detail("verified: certificate chain, SCT, identity and issuer, transparency log entry, signature, annotations (JSON on standard output)")
	if err := writeIndentedJSON(r.stdout, vj); err != nil {
		return nil, err
	}

	commit := env["CI_COMMIT_SHA"]
	r.begin("Searching the provenance index by commit: GET %s?annotation=com.gitlab.ci.commit.sha=%s", demo.SearchPath, commit)
	sr, err := sess.Search(ctx, "com.gitlab.ci.commit.sha", commit)
	if err != nil {
		return nil, r.fail("provenance search", err)
	}
	found := false
	for _, x := range sr.Results {
		if x.Subject == ref.DigestStr() && x.Status == "verified" {
			found = true
		}
	}
	if !found {
		return nil, r.fail("provenance search", fmt.Errorf("the index has no verified signature of %s for commit %s: %s", ref.DigestStr(), commit, sr.Raw))
	}
	r.detail("found the signature of %s (status verified) (JSON on standard output)", ref.DigestStr())
	fmt.Fprintln(r.stdout)
	if err := writeIndentedJSON(r.stdout, sr.Raw); err != nil {
		return nil, err
	}
	return &demoOutcome{srvURL: srv.URL(), host: env["CI_REGISTRY"], dataDir: dataDir, fingerprint: trust.Fingerprint,
		image: ref.String(), tag: tag, identity: sess.Identity(), issuer: sess.Issuer(), commit: commit, project: r.o.project,
		console: srv.URL() + server.ConsolePath + "image/" + ref.Context().RepositoryStr() + "@" + ref.DigestStr()}, nil
}

func writeIndentedJSON(w io.Writer, raw []byte) error {
	var b bytes.Buffer
	if err := json.Indent(&b, bytes.TrimSpace(raw), "", "  "); err != nil {
		return err
	}
	b.WriteByte('\n')
	_, err := w.Write(b.Bytes())
	return err
}

// printDemoNext prints the URLs and the commands to try next. Every line
// starting with "  $ " is a command that works as printed (POSIX shell)
// while the server serves the demo's data at the same address.
func printDemoNext(w io.Writer, o *demoOutcome, serving bool) {
	hm := selfCommand()
	pw := filepath.Join(o.dataDir, server.AdminPasswordFile)
	trPath, err := root.DefaultTrustedRootPath()
	if err != nil {
		trPath = "~/.hallmark/" + root.TrustedRootFile
	}
	search := o.srvURL + demo.SearchPath + "?annotation=com.gitlab.ci.commit.sha=" + o.commit
	if serving {
		fmt.Fprintf(w, "\nThe Hallmark demo server is running (Ctrl-C stops it):\n")
	} else {
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "  registry       %s/v2/  (docker, cosign, crane: %s)\n", o.srvURL, o.host)
	fmt.Fprintf(w, "  OIDC issuer    %s/.well-known/openid-configuration\n", o.srvURL)
	fmt.Fprintf(w, "  CA, log        %s/api/v1/signingCert, %s/api/v1/log\n", o.srvURL, o.srvURL)
	fmt.Fprintf(w, "  trusted root   %s%s  (sha256 %s)\n", o.srvURL, demo.TrustedRootPath, o.fingerprint)
	fmt.Fprintf(w, "  search API     %s\n", search)
	fmt.Fprintf(w, "  metrics        %s/metrics\n", o.srvURL)
	fmt.Fprintf(w, "  data dir       %s  (admin password: %s)\n", o.dataDir, pw)
	fmt.Fprintf(w, "  signed image   %s  (tag %s)\n", o.image, o.tag)
	fmt.Fprintf(w, "  console        %s  (sign in as admin: the project is private)\n", o.console)
	fmt.Fprintf(w, "\nTry next:\n")
	cmds := []struct{ comment, cmd string }{
		{"trust the server's CA and transparency log, pinned by fingerprint (stored in " + filepath.Dir(trPath) + ")",
			fmt.Sprintf("%s trust init --server %s --fingerprint %s", hm, o.srvURL, o.fingerprint)},
		{"log in as admin: stores the credentials in docker's config.json, where hallmark, cosign and docker find them",
			fmt.Sprintf("%s login -u admin --password-stdin %s < %s", hm, o.host, shellQuote(pw))},
		{"verify the signature by identity, issuer and tag annotation",
			fmt.Sprintf("%s verify --certificate-identity %s --certificate-oidc-issuer %s -a tag=%s %s",
				hm, shellQuote(o.identity), shellQuote(o.issuer), shellQuote(o.tag), o.image)},
		{"the same with stock cosign (v2.6+ or v3) and the trusted root 'trust init' stored",
			fmt.Sprintf("cosign verify --trusted-root %s --certificate-identity %s --certificate-oidc-issuer %s -a tag=%s %s",
				shellQuote(trPath), shellQuote(o.identity), shellQuote(o.issuer), shellQuote(o.tag), o.image)},
		{"provenance search by commit (admin sees every project; a CI job token sees its own)",
			fmt.Sprintf("curl -s -u \"admin:$(cat %s)\" %s", shellQuote(pw), shellQuote(search))},
		{"a CI job of your own (tokens minted by the server), then the reference pipeline's sign and verify lines",
			fmt.Sprintf("eval \"$(%s ci job --server %s --data-dir %s --project %s --ref main)\"", hm, o.srvURL, shellQuote(o.dataDir), shellQuote(o.project))},
		{"", fmt.Sprintf("%s sign -y --ci-annotations %s", hm, o.image)},
		{"", fmt.Sprintf("%s verify --certificate-identity \"$CI_PROJECT_URL//.gitlab-ci.yml@refs/heads/main\" --certificate-oidc-issuer \"$CI_SERVER_URL\" -a tag=\"$CI_COMMIT_SHORT_SHA\" %s", hm, o.image)},
		{"docker (127.0.0.0/8 registries need no TLS)",
			fmt.Sprintf("docker login -u admin --password-stdin %s < %s", o.host, shellQuote(pw))},
		{"", "docker pull " + o.image},
	}
	for _, c := range cmds {
		if c.comment != "" {
			fmt.Fprintf(w, "  # %s\n", c.comment)
		}
		fmt.Fprintf(w, "  $ %s\n", c.cmd)
	}
	if strings.HasPrefix(hm, "go run") {
		fmt.Fprintf(w, "  (run the hallmark commands from this directory, or 'go install ./cmd/hallmark' and use 'hallmark')\n")
	}
}

// selfCommand is how the user runs this hallmark: "hallmark" when that is
// this binary on PATH, "go run ./cmd/hallmark" under go run, else the
// binary's absolute path.
func selfCommand() string {
	exe, err := os.Executable()
	if err != nil {
		return "hallmark"
	}
	if p, err := exec.LookPath("hallmark"); err == nil {
		a, errA := os.Stat(p)
		b, errB := os.Stat(exe)
		if errA == nil && errB == nil && os.SameFile(a, b) {
			return "hallmark"
		}
	}
	if strings.Contains(exe, string(filepath.Separator)+"go-build") {
		return "go run ./cmd/hallmark"
	}
	return shellQuote(exe)
}
