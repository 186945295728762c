package demo

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ImageFile is the path of the one file in the images BuildImage makes.
const ImageFile = "hallmark-demo.txt"

// BuildImage builds, in memory, the small image a CI job of env builds
// "FROM scratch": one gzip layer holding ImageFile (which names the
// project, commit, pipeline and job, plus note, so every job and note gives
// a distinct digest), and an OCI config labelled with the source and
// revision, as `docker build --label` would.
func BuildImage(env map[string]string, note string) (v1.Image, error) {
	content := fmt.Sprintf("Built by Hallmark's demo CI job.\nproject: %s\ncommit: %s\nref: %s\npipeline: %s\njob: %s\n",
		env["CI_PROJECT_PATH"], env["CI_COMMIT_SHA"], env["CI_COMMIT_REF_NAME"], env["CI_PIPELINE_ID"], env["CI_JOB_ID"])
	if note != "" {
		content += "note: " + note + "\n"
	}
	created := time.Unix(0, 0).UTC()
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	if err := tw.WriteHeader(&tar.Header{Name: ImageFile, Mode: 0o644, Size: int64(len(content)), ModTime: created,
		Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
		return nil, err
	}
	if _, err := io.WriteString(tw, content); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(tb.Bytes()); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	layerBytes := gz.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerBytes)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{Layer: layer, History: v1.History{
		Created: v1.Time{Time: created}, CreatedBy: "COPY " + ImageFile + " / # hallmark demo"}})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = "amd64", "linux"
	cf.Created = v1.Time{Time: created}
	cf.Config.Cmd = []string{"/" + ImageFile}
	cf.Config.Labels = map[string]string{
		"org.opencontainers.image.source":   env["CI_PROJECT_URL"],
		"org.opencontainers.image.revision": env["CI_COMMIT_SHA"],
	}
	return mutate.ConfigFile(img, cf)
}
