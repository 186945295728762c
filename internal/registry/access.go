package registry

import "github.com/hallmark-dev/hallmark/internal/auth"

// ParseEndpoint parses a /v2/ URL path as the handler itself routes it, so
// that access control in front of the handler (auth.Service.Guard) decides
// on exactly the repository the handler will serve. The kind is one of the
// auth.Endpoint* constants, "" for a path that is no endpoint; the
// repository is empty for base, catalog and unknown paths. It returns an
// error when the path names a repository endpoint with an invalid
// repository name; the handler answers such requests with NAME_INVALID.
func ParseEndpoint(path string) (auth.Endpoint, error) {
	rt, perr := parseRoute(path)
	var kind string
	switch rt.kind {
	case routeBase:
		kind = auth.EndpointBase
	case routeCatalog:
		kind = auth.EndpointCatalog
	case routeTags:
		kind = auth.EndpointTags
	case routeManifest:
		kind = auth.EndpointManifests
	case routeBlob:
		kind = auth.EndpointBlobs
	case routeUploadStart, routeUpload:
		kind = auth.EndpointUploads
	case routeReferrers:
		kind = auth.EndpointReferrers
	}
	ep := auth.Endpoint{Kind: kind, Repository: rt.name}
	if perr != nil { // not a nil *Error in a non-nil error
		return ep, perr
	}
	return ep, nil
}
