package registry

import (
	"net/http"
	"strings"

	"github.com/hallmark-dev/hallmark/pkg/oci"
)

type routeKind int

const (
	routeUnknown routeKind = iota
	routeBase
	routeCatalog
	routeTags
	routeManifest
	routeBlob
	routeUploadStart
	routeUpload
	routeReferrers
)

// route is a parsed /v2/ path.
type route struct {
	kind routeKind
	name string // repository
	ref  string // tag, digest or upload id
}

// parseRoute splits a /v2/ URL path into endpoint, repository and reference.
// Repository names contain '/', so the endpoint is found from the right.
// A path that names an endpoint with an invalid repository name returns
// NAME_INVALID; a path that is no endpoint returns kind routeUnknown.
func parseRoute(path string) (route, *Error) {
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok {
		if path == "/v2" {
			return route{kind: routeBase}, nil
		}
		return route{}, nil
	}
	switch rest {
	case "":
		return route{kind: routeBase}, nil
	case "_catalog":
		return route{kind: routeCatalog}, nil
	}
	var rt route
	switch {
	case strings.HasSuffix(rest, "/tags/list"):
		rt = route{kind: routeTags, name: strings.TrimSuffix(rest, "/tags/list")}
	case strings.HasSuffix(rest, "/blobs/uploads/"):
		rt = route{kind: routeUploadStart, name: strings.TrimSuffix(rest, "/blobs/uploads/")}
	case strings.HasSuffix(rest, "/blobs/uploads"):
		rt = route{kind: routeUploadStart, name: strings.TrimSuffix(rest, "/blobs/uploads")}
	default:
		i := strings.LastIndexByte(rest, '/')
		if i <= 0 || i == len(rest)-1 {
			return route{}, nil
		}
		head, last := rest[:i], rest[i+1:]
		j := strings.LastIndexByte(head, '/')
		if j <= 0 {
			return route{}, nil
		}
		name, endpoint := head[:j], head[j+1:]
		switch endpoint {
		case "manifests":
			rt = route{kind: routeManifest, name: name, ref: last}
		case "blobs":
			rt = route{kind: routeBlob, name: name, ref: last}
		case "referrers":
			rt = route{kind: routeReferrers, name: name, ref: last}
		case "uploads":
			if n, ok := strings.CutSuffix(name, "/blobs"); ok && n != "" {
				rt = route{kind: routeUpload, name: n, ref: last}
			} else {
				return route{}, nil
			}
		default:
			return route{}, nil
		}
	}
	if err := oci.ValidateName(rt.name); err != nil {
		return rt, apiErr(http.StatusBadRequest, oci.CodeNameInvalid, err.Error(), map[string]string{"name": truncate(rt.name, 300)})
	}
	return rt, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// routeLabel names the endpoint a request hits, for metrics and logs.
func routeLabel(kind routeKind, method string) string {
	switch kind {
	case routeBase:
		return "base"
	case routeCatalog:
		return "catalog"
	case routeTags:
		return "tags_list"
	case routeReferrers:
		return "referrers"
	case routeUploadStart:
		return "upload_start"
	case routeManifest:
		return "manifest_" + methodLabel(method)
	case routeBlob:
		return "blob_" + methodLabel(method)
	case routeUpload:
		return "upload_" + methodLabel(method)
	}
	return "unknown"
}

func methodLabel(m string) string {
	switch m {
	case http.MethodGet:
		return "get"
	case http.MethodHead:
		return "head"
	case http.MethodPut:
		return "put"
	case http.MethodPatch:
		return "patch"
	case http.MethodDelete:
		return "delete"
	case http.MethodPost:
		return "post"
	}
	return "other"
}
