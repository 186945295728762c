package cli_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/hallmark-dev/hallmark/internal/testenv"
)

// gitlabEnv is the environment of a GitLab CI job as the predefined
// variables describe it.
var gitlabEnv = map[string]string{
	"GITLAB_CI":           "true",
	"GITLAB_USER_NAME":    "Jane Doe",
	"CI_PIPELINE_ID":      "4242",
	"CI_PIPELINE_URL":     "https://gitlab.example/grp/proj/-/pipelines/4242",
	"CI_JOB_ID":           "777",
	"CI_JOB_URL":          "https://gitlab.example/grp/proj/-/jobs/777",
	"CI_COMMIT_SHA":       "0123456789abcdef0123456789abcdef01234567",
	"CI_COMMIT_SHORT_SHA": "01234567",
	"CI_COMMIT_REF_NAME":  "main",
	"CI_PROJECT_PATH":     "grp/proj",
	"CI_PROJECT_URL":      "https://gitlab.example/grp/proj",
}

// gitlabAnnotations are the eleven annotations of GitLab's tutorial for
// gitlabEnv, signing a digest reference.
var gitlabAnnotations = map[string]string{
	"com.gitlab.ci.user.name":           "Jane Doe",
	"com.gitlab.ci.pipeline.id":         "4242",
	"com.gitlab.ci.pipeline.url":        "https://gitlab.example/grp/proj/-/pipelines/4242",
	"com.gitlab.ci.job.id":              "777",
	"com.gitlab.ci.job.url":             "https://gitlab.example/grp/proj/-/jobs/777",
	"com.gitlab.ci.commit.sha":          "0123456789abcdef0123456789abcdef01234567",
	"com.gitlab.ci.commit.ref.name":     "main",
	"com.gitlab.ci.project.path":        "grp/proj",
	"org.opencontainers.image.source":   "https://gitlab.example/grp/proj",
	"org.opencontainers.image.revision": "0123456789abcdef0123456789abcdef01234567",
	"tag":                               "01234567",
}

func envList(m map[string]string, extra ...string) []string {
	var out []string
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	return append(out, extra...)
}

func annotationArgs(m map[string]string) []string {
	var out []string
	for k, v := range m {
		out = append(out, "-a", k+"="+v)
	}
	return out
}

func TestSignFlagsAndEnv(t *testing.T) {
	host := testenv.StartServer(t, nil).Addr
	hm, cs := newTools(t)
	hm.ok("generate-key-pair")

	t.Run("generate-key-pair refuses to overwrite", func(t *testing.T) {
		r := hm.fail(1, "generate-key-pair")
		if !strings.Contains(r.stderr, "cosign.key already exists") {
			t.Errorf("got %s", r)
		}
	})

	t.Run("tlog upload needs a configured log", func(t *testing.T) {
		img := pushImage(t, host, "sign/tlog", "v1")
		r := hm.fail(1, "sign", "--new-bundle-format=false", "--key", "cosign.key", img.String())
		if !strings.Contains(r.stderr, "--tlog-upload=false") {
			t.Errorf("the error must say how to sign without a log: %s", r)
		}
		hm.okEnv([]string{"COSIGN_TLOG_UPLOAD=false", "COSIGN_YES=true"}, "sign", "--new-bundle-format=false", "--key", "cosign.key", img.String())
		hm.ok("sign", "--new-bundle-format=false", "-y", "--key", "cosign.key", "--tlog-upload=false", img.String())
		cs.ok(verifyArgs("cosign.pub", img.String())...)
	})

	t.Run("key sources", func(t *testing.T) {
		img := pushImage(t, host, "sign/keys", "v1")
		encrypted, _ := os.ReadFile(hm.path("cosign.key"))
		// A plain PKCS#8 key: no password is asked for, even with stdin open.
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		der, _ := x509.MarshalPKCS8PrivateKey(k)
		plain := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
		pubDER, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
		os.WriteFile(hm.path("plain.key"), plain, 0o600)
		os.WriteFile(hm.path("plain.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644)

		hm.okEnv([]string{"COSIGN_KEY_PEM=" + string(encrypted)}, "sign", "--new-bundle-format=false", "--key", "env://COSIGN_KEY_PEM", "--tlog-upload=false", "-a", "src=env", img.String())
		cs.ok(verifyArgs("cosign.pub", "-a", "src=env", img.String())...)
		hm.okEnv([]string{"COSIGN_KEY=plain.key", "COSIGN_PASSWORD="}, "sign", "--new-bundle-format=false", "--tlog-upload=false", "-a", "src=plain", img.String())
		cs.ok(verifyArgs("plain.pub", "-a", "src=plain", img.String())...)
		pubPEM, _ := os.ReadFile(hm.path("plain.pub"))
		hm.okEnv([]string{"PUB=" + string(pubPEM)}, verifyArgs("env://PUB", "-a", "src=plain", img.String())...)
	})

	t.Run("password", func(t *testing.T) {
		img := pushImage(t, host, "sign/password", "v1")
		r := hm.runEnv([]string{"COSIGN_PASSWORD=wrong"}, "", "sign", "--new-bundle-format=false", "--key", "cosign.key", "--tlog-upload=false", img.String())
		if r.code != 1 || !strings.Contains(r.stderr, "wrong password") || !strings.Contains(r.stderr, "COSIGN_PASSWORD") {
			t.Errorf("wrong password: %s", r)
		}
		// Without COSIGN_PASSWORD the password is all of stdin, as in cosign.
		env := []string{}
		for _, e := range hm.env {
			if !strings.HasPrefix(e, "COSIGN_PASSWORD=") {
				env = append(env, e)
			}
		}
		saved := hm.env
		hm.env = env
		r = hm.runEnv(nil, "e2e-password", "sign", "--new-bundle-format=false", "--key", "cosign.key", "--tlog-upload=false", "-a", "pw=stdin", img.String())
		hm.env = saved
		if r.code != 0 {
			t.Fatalf("password from stdin: %s", r)
		}
		cs.ok(verifyArgs("cosign.pub", "-a", "pw=stdin", img.String())...)
	})

	t.Run("annotation parsing follows cosign", func(t *testing.T) {
		img := pushImage(t, host, "sign/annotations", "v1")
		for _, tc := range []struct{ arg, msg string }{
			{"k=a=b", "unable to parse annotation: k=a=b"},
			{"k=a,b", "unable to parse annotation: b"},
			{"novalue", "unable to parse annotation: novalue"},
		} {
			h := hm.fail(1, "sign", "--new-bundle-format=false", "--key", "cosign.key", "--tlog-upload=false", "-a", tc.arg, img.String())
			c := cs.fail(1, "sign", "--key", "cosign.key", "--tlog-upload=false", "-a", tc.arg, img.String())
			if !strings.Contains(h.stderr, tc.msg) || !strings.Contains(c.stderr, tc.msg) {
				t.Errorf("-a %s: want %q from both\nhallmark: %s\ncosign: %s", tc.arg, tc.msg, h.stderr, c.stderr)
			}
		}
		if _, err := remote.Get(img.Context().Tag("sha256-" + img.DigestStr()[7:] + ".sig")); err == nil {
			t.Errorf("a rejected annotation still pushed a signature")
		}
		// Quoted CSV keeps a comma inside a value, as pflag/cosign do.
		hm.ok("sign", "--new-bundle-format=false", "--key", "cosign.key", "--tlog-upload=false", "-a", `"list=a,b"`, img.String())
		cs.ok(verifyArgs("cosign.pub", "-a", `"list=a,b"`, img.String())...)
	})

	t.Run("ci annotations", func(t *testing.T) {
		img := pushImage(t, host, "grp/proj", "01234567")
		hm.okEnv(envList(gitlabEnv), "sign", "--new-bundle-format=false", "--key", "cosign.key", "--tlog-upload=false", "--ci-annotations", "-y", img.String())
		r := cs.ok(verifyArgs("cosign.pub", append(annotationArgs(gitlabAnnotations), img.String())...)...)
		opt := optional(t, payloads(t, r.stdout)[0][0])
		if len(opt) != 11 {
			t.Errorf("signed %d annotations, want the tutorial's 11: %v", len(opt), opt)
		}
		// Explicit -a wins over a collected value; the tag of a tag
		// reference is the "tag" annotation.
		img2 := pushImage(t, host, "grp/proj", "v2.0")
		hm.okEnv(envList(gitlabEnv), "sign", "--new-bundle-format=false", "--key", "cosign.key", "--tlog-upload=false", "--ci-annotations",
			"-a", "com.gitlab.ci.user.name=release-bot", img2.Context().Tag("v2.0").String())
		want := map[string]string{"com.gitlab.ci.user.name": "release-bot", "tag": "v2.0", "com.gitlab.ci.commit.sha": gitlabAnnotations["com.gitlab.ci.commit.sha"]}
		cs.ok(verifyArgs("cosign.pub", append(annotationArgs(want), img2.String())...)...)
		cs.fail(12, verifyArgs("cosign.pub", "-a", "com.gitlab.ci.user.name=Jane Doe", img2.String())...)

		// A missing variable is reported by name and nothing is signed.
		img3 := pushImage(t, host, "grp/proj", "missing")
		env := envList(gitlabEnv, "CI_JOB_URL=", "CI_PIPELINE_ID=")
		r = hm.runEnv(env, "", "sign", "--new-bundle-format=false", "--key", "cosign.key", "--tlog-upload=false", "--ci-annotations", img3.String())
		if r.code != 1 || !strings.Contains(r.stderr, "CI_PIPELINE_ID, CI_JOB_URL") {
			t.Errorf("missing variables must be named: %s", r)
		}
		cs.fail(10, verifyArgs("cosign.pub", img3.String())...)

		// Outside CI.
		r = hm.run("sign", "--new-bundle-format=false", "--key", "cosign.key", "--tlog-upload=false", "--ci-annotations", img3.String())
		if r.code != 1 || !strings.Contains(r.stderr, "no supported CI environment") {
			t.Errorf("outside CI: %s", r)
		}

		// GitHub Actions as the second provider.
		img4 := pushImage(t, host, "octo/app", "v1")
		gh := []string{"GITHUB_ACTIONS=true", "GITHUB_ACTOR=octocat", "GITHUB_SERVER_URL=https://github.com", "GITHUB_REPOSITORY=octo/app",
			"GITHUB_RUN_ID=99", "GITHUB_RUN_ATTEMPT=1", "GITHUB_JOB=build", "GITHUB_WORKFLOW_REF=octo/app/.github/workflows/r.yml@refs/heads/main",
			"GITHUB_SHA=fedcba9876543210fedcba9876543210fedcba98", "GITHUB_REF_NAME=main"}
		hm.okEnv(gh, "sign", "--new-bundle-format=false", "--key", "cosign.key", "--tlog-upload=false", "--ci-annotations", img4.String())
		cs.ok(verifyArgs("cosign.pub", "-a", "com.github.actions.commit.sha=fedcba9876543210fedcba9876543210fedcba98",
			"-a", "org.opencontainers.image.source=https://github.com/octo/app", "-a", "tag=fedcba98", img4.String())...)
	})

	t.Run("outputs, no upload, docker media types", func(t *testing.T) {
		img := pushImage(t, host, "sign/outputs", "v1")
		hm.ok("sign", "--new-bundle-format=false", "--key", "cosign.key", "--tlog-upload=false", "--upload=false", "--output-signature", "sig.b64", "--output-payload", "payload.json", "-a", "a=b", img.String())
		p, err := os.ReadFile(hm.path("payload.json"))
		if err != nil || !strings.Contains(string(p), `"optional":{"a":"b"}`) || !strings.Contains(string(p), img.DigestStr()) {
			t.Errorf("payload file: %q, %v", p, err)
		}
		if s, err := os.ReadFile(hm.path("sig.b64")); err != nil || len(s) < 80 {
			t.Errorf("signature file: %q, %v", s, err)
		}
		cs.fail(10, verifyArgs("cosign.pub", img.String())...)

		hm.okEnv([]string{"COSIGN_DOCKER_MEDIA_TYPES=1"}, "sign", "--new-bundle-format=false", "--key", "cosign.key", "--tlog-upload=false", img.String())
		d, err := remote.Get(img.Context().Tag("sha256-" + img.DigestStr()[7:] + ".sig"))
		if err != nil {
			t.Fatal(err)
		}
		var m struct {
			MediaType string `json:"mediaType"`
			Config    struct {
				MediaType string `json:"mediaType"`
			} `json:"config"`
		}
		json.Unmarshal(d.Manifest, &m)
		if m.MediaType != "application/vnd.docker.distribution.manifest.v2+json" || m.Config.MediaType != "application/vnd.docker.container.image.v1+json" {
			t.Errorf("COSIGN_DOCKER_MEDIA_TYPES=1 wrote %+v", m)
		}
		cs.ok(verifyArgs("cosign.pub", img.String())...)
		hm.ok(verifyArgs("cosign.pub", img.String())...)
	})

	t.Run("verify key errors", func(t *testing.T) {
		img := pushImage(t, host, "sign/verifykeys", "v1")
		for _, tc := range []struct{ key, msg string }{
			{"cosign.key", "is a private key: verify with the public key"},
			{"env://NOPE", "environment variable NOPE is not set"},
			{"missing.pub", "no such file"},
		} {
			r := hm.fail(1, verifyArgs(tc.key, img.String())...)
			if !strings.Contains(r.stderr, tc.msg) {
				t.Errorf("--key %s: want %q, got %s", tc.key, tc.msg, r.stderr)
			}
		}
	})
}
