package meta

import (
	"time"

	"github.com/opencontainers/go-digest"
)

// What the web console reads beyond the registry's own calls: bounded
// pages (keyset paging, row caps) served by meta/sqlstore.

// TagInfo is a tag with the manifest it points at.
type TagInfo struct {
	Name         string
	Digest       digest.Digest
	MediaType    string
	ArtifactType string
	// Size is the manifest's own size plus the blobs it references (config
	// and layers) that the registry has; an index counts only itself.
	Size     int64
	Children int       // an index's child manifests
	Pushed   time.Time // when the tag last moved
}

// ImageRef is an image (a tagged manifest) somewhere in the registry.
type ImageRef struct {
	Repository string
	Digest     digest.Digest
	Tag        string
	Pushed     time.Time
}

// StatusCount is how many images of a repository have one image status.
type StatusCount struct {
	Repository string
	Status     string
	Images     int
	LastPush   time.Time
}
