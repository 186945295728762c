package meta_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/hallmark-dev/hallmark/internal/meta"
)

const (
	oidCommit = "1.3.6.1.4.1.57264.1.13"
	oidRef    = "1.3.6.1.4.1.57264.1.14"
	oidJob    = "1.3.6.1.4.1.57264.1.21"
)

func factSet(fs []meta.Fact) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Field+"="+f.Value+"/"+f.Basis)
	}
	slices.Sort(out)
	return out
}

func TestFacts(t *testing.T) {
	sha := strings.Repeat("ab", 20)
	lies := map[string]string{"com.gitlab.ci.commit.sha": strings.Repeat("EE", 20), "com.gitlab.ci.pipeline.url": "https://gl/g/a/-/pipelines/99",
		"com.gitlab.ci.job.id": "1", "com.gitlab.ci.user.name": "Eve", "com.gitlab.ci.commit.ref.name": "evil", "com.gitlab.ci.project.path": "x/y"}
	for _, tc := range []struct {
		name   string
		sig    meta.Signature
		claims map[string]string
		want   []string
	}{
		{"claims and certificate: annotations never count", meta.Signature{Repository: "g/a", Signer: "https://gl/g/a//.gitlab-ci.yml@refs/heads/main", CertIssuer: "https://gl",
			CertSHA256: "c", Annotations: lies, CertExtensions: map[string]string{oidCommit: sha, oidRef: "refs/heads/main", oidJob: "https://gl/g/a/-/jobs/302"}},
			map[string]string{"sha": sha, "pipeline_id": "574", "job_id": "302", "user_login": "alice", "runner_id": "12", "ref": "main", "ref_type": "branch", "project_path": "g/a"},
			[]string{"commit=" + sha + "/ca-claims", "identity=https://gl/g/a//.gitlab-ci.yml@refs/heads/main/certificate", "issuer=https://gl/certificate",
				"job=302/ca-claims", "pipeline=574/ca-claims", "project=g/a/ca-claims", "project=g/repository", "ref=main/ca-claims",
				"ref=refs/heads/main/ca-claims", "runner=12/ca-claims", "user=alice/ca-claims"}},
		{"certificate only", meta.Signature{Repository: "g/a", Signer: "id", CertIssuer: "https://gl", Annotations: lies,
			CertExtensions: map[string]string{oidCommit: strings.ToUpper(sha), oidJob: "https://github.com/o/r/actions/runs/5/attempts/1"}},
			nil,
			[]string{"commit=" + sha + "/certificate", "identity=id/certificate", "issuer=https://gl/certificate", "job=https://github.com/o/r/actions/runs/5/attempts/1/certificate",
				"pipeline=99/annotation", "project=g/a/repository", "project=g/repository", "ref=evil/annotation", "user=Eve/annotation"}},
		{"key-signed: the annotations", meta.Signature{Repository: "a", Signer: "SHA256:k", Annotations: lies}, nil,
			[]string{"commit=" + strings.Repeat("ee", 20) + "/annotation", "identity=SHA256:k/key", "job=1/annotation", "pipeline=99/annotation",
				"project=a/repository", "ref=evil/annotation", "user=Eve/annotation"}},
		{"blank values", meta.Signature{Repository: "a", Annotations: map[string]string{"com.gitlab.ci.commit.sha": " ", "com.gitlab.ci.job.url": ""}}, nil,
			[]string{"project=a/repository"}},
	} {
		if got := factSet(meta.Facts(&tc.sig, tc.claims)); !slices.Equal(got, tc.want) {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
}

func TestContradictions(t *testing.T) {
	sig := meta.Signature{Repository: "g/a", Annotations: map[string]string{"com.gitlab.ci.pipeline.id": "999", "com.gitlab.ci.pipeline.url": "https://gl/g/a/-/pipelines/574",
		"com.gitlab.ci.commit.ref.name": "main", "com.gitlab.ci.user.name": "Alice Example", "com.gitlab.ci.project.path": "g/b",
		"com.gitlab.ci.commit.sha": strings.Repeat("AB", 20)},
		CertExtensions: map[string]string{oidRef: "refs/heads/main", oidCommit: strings.Repeat("ab", 20)}}
	got := meta.Contradictions(&sig, map[string]string{"pipeline_id": "574", "user_login": "alice", "project_path": "g/a"})
	if len(got) != 2 || got[0].Field != meta.FieldPipeline || got[0].Annotation != "com.gitlab.ci.pipeline.id" || got[0].Asserted != "999" ||
		!slices.Equal(got[0].Evidence, []string{"574"}) || got[0].Basis != meta.BasisClaims || got[1].Field != meta.FieldProject || got[1].Asserted != "g/b" {
		t.Errorf("contradictions %+v", got)
	}
	if got := meta.Contradictions(&sig, nil); len(got) != 0 {
		t.Errorf("without claims: %+v", got)
	}
}

func TestNormalizeFact(t *testing.T) {
	for _, tc := range []struct{ field, in, want string }{
		{meta.FieldCommit, " ABCdef ", "abcdef"},
		{meta.FieldPipeline, "https://gl/g/a/-/pipelines/574", "574"},
		{meta.FieldPipeline, "https://gl/g/a/-/pipelines/574/builds?x=1", "574"},
		{meta.FieldPipeline, "https://github.com/o/r/actions/runs/77", "77"},
		{meta.FieldPipeline, "https://gl/g/a/-/pipelines/", "https://gl/g/a/-/pipelines/"},
		{meta.FieldPipeline, "https://gl/g/a/-/pipelines/x1", "https://gl/g/a/-/pipelines/x1"},
		{meta.FieldJob, "https://gl/g/a/-/jobs/302#L1", "302"},
		{meta.FieldJob, "302", "302"},
		{meta.FieldUser, " alice ", "alice"},
	} {
		if got := meta.NormalizeFact(tc.field, tc.in); got != tc.want {
			t.Errorf("NormalizeFact(%s, %q) = %q, want %q", tc.field, tc.in, got, tc.want)
		}
	}
}

// FuzzFacts: facts from any annotations and claims are non-empty, unique,
// and an annotation never yields a fact for a field evidence speaks to.
func FuzzFacts(f *testing.F) {
	f.Add("com.gitlab.ci.pipeline.url", "https://gl/g/a/-/pipelines/9", "pipeline_id", "9", "g/a")
	f.Add("com.gitlab.ci.commit.ref.name", "refs/tags/v1", "ref", "v1", "a")
	f.Add("com.gitlab.ci.job.url", "/-/jobs/", "job_id", "", "x/y/z")
	f.Fuzz(func(t *testing.T, annKey, annValue, claim, claimValue, repo string) {
		s := meta.Signature{Repository: repo, Annotations: map[string]string{annKey: annValue}}
		claims := map[string]string{claim: claimValue, "ref_type": "branch"}
		facts := meta.Facts(&s, claims)
		seen := map[[2]string]bool{}
		evidence := map[string]bool{}
		for _, fc := range facts {
			if fc.Value == "" || seen[[2]string{fc.Field, fc.Value}] {
				t.Fatalf("empty or repeated fact %+v", fc)
			}
			seen[[2]string{fc.Field, fc.Value}] = true
			if fc.Basis == meta.BasisClaims || fc.Basis == meta.BasisCertificate {
				evidence[fc.Field] = true
			}
		}
		for _, fc := range facts {
			if fc.Basis == meta.BasisAnnotation && evidence[fc.Field] {
				t.Fatalf("annotation fact %+v beside evidence for %s", fc, fc.Field)
			}
		}
		meta.Contradictions(&s, claims)
	})
}
