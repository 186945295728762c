package registry

// Endpoint kinds reported by ParseEndpoint.
const (
	EndpointUnknown   = ""
	EndpointBase      = "base"
	EndpointCatalog   = "catalog"
	EndpointTags      = "tags"
	EndpointManifests = "manifests"
	EndpointBlobs     = "blobs"
	EndpointUploads   = "uploads" // upload start and upload sessions
	EndpointReferrers = "referrers"
)

// Endpoint is what a /v2/ request path addresses, as the handler itself
// routes it, so that access control in front of the handler decides on
// exactly the repository the handler will serve.
type Endpoint struct {
	Kind       string // one of the Endpoint* constants
	Repository string // empty for base, catalog and unknown paths
	Reference  string // tag, digest or upload session id, when the path has one
}

// ParseEndpoint parses a /v2/ URL path. It returns an error when the path
// names a repository endpoint with an invalid repository name; the handler
// answers such requests with NAME_INVALID.
func ParseEndpoint(path string) (Endpoint, error) {
	rt, perr := parseRoute(path)
	var kind string
	switch rt.kind {
	case routeBase:
		kind = EndpointBase
	case routeCatalog:
		kind = EndpointCatalog
	case routeTags:
		kind = EndpointTags
	case routeManifest:
		kind = EndpointManifests
	case routeBlob:
		kind = EndpointBlobs
	case routeUploadStart, routeUpload:
		kind = EndpointUploads
	case routeReferrers:
		kind = EndpointReferrers
	}
	ep := Endpoint{Kind: kind, Repository: rt.name, Reference: rt.ref}
	if perr != nil {
		return ep, perr
	}
	return ep, nil
}
