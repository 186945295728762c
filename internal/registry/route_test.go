package registry

import (
	"strings"
	"testing"

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/pkg/oci"
)

func TestParseRoute(t *testing.T) {
	d := "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
	tests := []struct {
		path    string
		want    route
		invalid bool // NAME_INVALID
	}{
		{"/v2/", route{kind: routeBase}, false},
		{"/v2", route{kind: routeBase}, false},
		{"/v2/_catalog", route{kind: routeCatalog}, false},
		{"/v2/app/tags/list", route{kind: routeTags, name: "app"}, false},
		{"/v2/a/b/c/tags/list", route{kind: routeTags, name: "a/b/c"}, false},
		{"/v2/app/manifests/latest", route{kind: routeManifest, name: "app", ref: "latest"}, false},
		{"/v2/group/sub/project/manifests/" + d, route{kind: routeManifest, name: "group/sub/project", ref: d}, false},
		{"/v2/app/blobs/" + d, route{kind: routeBlob, name: "app", ref: d}, false},
		{"/v2/app/blobs/uploads/", route{kind: routeUploadStart, name: "app"}, false},
		{"/v2/app/blobs/uploads", route{kind: routeUploadStart, name: "app"}, false},
		{"/v2/app/blobs/uploads/abc", route{kind: routeUpload, name: "app", ref: "abc"}, false},
		{"/v2/app/referrers/" + d, route{kind: routeReferrers, name: "app", ref: d}, false},
		// Names made of endpoint words route from the right.
		{"/v2/manifests/manifests/manifests", route{kind: routeManifest, name: "manifests", ref: "manifests"}, false},
		{"/v2/blobs/blobs/uploads/", route{kind: routeUploadStart, name: "blobs"}, false},
		{"/v2/blobs/blobs/uploads/x", route{kind: routeUpload, name: "blobs", ref: "x"}, false},
		{"/v2/x/blobs/blobs/uploads/x", route{kind: routeUpload, name: "x/blobs", ref: "x"}, false},
		{"/v2/tags/list/tags/list", route{kind: routeTags, name: "tags/list"}, false},
		{"/v2/x/tags/list/manifests/list", route{kind: routeManifest, name: "x/tags/list", ref: "list"}, false},
		// Not endpoints.
		{"/", route{}, false},
		{"/v1/", route{}, false},
		{"/v2/app", route{}, false},
		{"/v2/app/", route{}, false},
		{"/v2/app/manifests/", route{}, false},
		{"/v2/manifests/x", route{}, false},
		{"/v2/blobs/uploads/x", route{}, false},
		{"/v2/app/other/x", route{}, false},
		{"/v2//manifests/x", route{}, false},
		// Endpoints with invalid names.
		{"/v2/App/tags/list", route{kind: routeTags, name: "App"}, true},
		{"/v2//tags/list", route{kind: routeTags, name: ""}, true},
		{"/v2/a//b/manifests/x", route{kind: routeManifest, name: "a//b", ref: "x"}, true},
		{"/v2/../x/blobs/" + d, route{kind: routeBlob, name: "../x", ref: d}, true},
		{"/v2/" + strings.Repeat("a", 256) + "/blobs/uploads/", route{kind: routeUploadStart, name: strings.Repeat("a", 256)}, true},
	}
	for _, tc := range tests {
		got, err := parseRoute(tc.path)
		if got != tc.want {
			t.Errorf("parseRoute(%q) = %+v, want %+v", tc.path, got, tc.want)
		}
		if (err != nil) != tc.invalid {
			t.Errorf("parseRoute(%q) error %v, want invalid=%v", tc.path, err, tc.invalid)
		}
		if err != nil && err.Code != oci.CodeNameInvalid {
			t.Errorf("parseRoute(%q) code %s", tc.path, err.Code)
		}
	}
}

// TestParseEndpoint: the access-control view of a path names the endpoint
// and repository the handler routes it to; a valid path has a nil error
// (not a nil *Error).
func TestParseEndpoint(t *testing.T) {
	d := "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
	tests := []struct {
		path    string
		want    auth.Endpoint
		invalid bool
	}{
		{"/v2/", auth.Endpoint{Kind: auth.EndpointBase}, false},
		{"/v2/_catalog", auth.Endpoint{Kind: auth.EndpointCatalog}, false},
		{"/v2/g/app/tags/list", auth.Endpoint{Kind: auth.EndpointTags, Repository: "g/app"}, false},
		{"/v2/g/app/manifests/v1", auth.Endpoint{Kind: auth.EndpointManifests, Repository: "g/app"}, false},
		{"/v2/g/app/blobs/" + d, auth.Endpoint{Kind: auth.EndpointBlobs, Repository: "g/app"}, false},
		{"/v2/g/app/blobs/uploads/", auth.Endpoint{Kind: auth.EndpointUploads, Repository: "g/app"}, false},
		{"/v2/g/app/blobs/uploads/abc", auth.Endpoint{Kind: auth.EndpointUploads, Repository: "g/app"}, false},
		{"/v2/g/app/referrers/" + d, auth.Endpoint{Kind: auth.EndpointReferrers, Repository: "g/app"}, false},
		{"/v2/g/app", auth.Endpoint{}, false},
		{"/v2/G/app/manifests/v1", auth.Endpoint{Kind: auth.EndpointManifests, Repository: "G/app"}, true},
	}
	for _, tc := range tests {
		got, err := ParseEndpoint(tc.path)
		if got != tc.want || (err != nil) != tc.invalid {
			t.Errorf("ParseEndpoint(%q) = %+v, %v; want %+v, invalid=%v", tc.path, got, err, tc.want, tc.invalid)
		}
	}
}

// buildPath is the inverse of parseRoute for repository endpoints.
func buildPath(rt route) string {
	switch rt.kind {
	case routeTags:
		return "/v2/" + rt.name + "/tags/list"
	case routeManifest:
		return "/v2/" + rt.name + "/manifests/" + rt.ref
	case routeBlob:
		return "/v2/" + rt.name + "/blobs/" + rt.ref
	case routeUploadStart:
		return "/v2/" + rt.name + "/blobs/uploads/"
	case routeUpload:
		return "/v2/" + rt.name + "/blobs/uploads/" + rt.ref
	case routeReferrers:
		return "/v2/" + rt.name + "/referrers/" + rt.ref
	}
	return ""
}

// FuzzParseRoute checks that routing never panics, never hands the handler
// an invalid repository name, and that every parsed repository endpoint is
// exactly the path it came from (so access control, which uses the same
// parse, and the handler agree on the repository).
func FuzzParseRoute(f *testing.F) {
	for _, p := range []string{
		"/v2/", "/v2/_catalog", "/v2/library/alpine/manifests/latest", "/v2/a/b/c/tags/list",
		"/v2/x/blobs/uploads/", "/v2/x/blobs/uploads/0123456789abcdef0123456789abcdef",
		"/v2/blobs/blobs/uploads/blobs/uploads/", "/v2/a/referrers/sha256:abc", "/v2/a/blobs/sha512:00",
		"/v2/tags/list/tags/list", "/v2//manifests/x", "/v2/A/tags/list", "/v2/a/manifests/",
	} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, path string) {
		rt, err := parseRoute(path)
		switch rt.kind {
		case routeUnknown, routeBase, routeCatalog:
			if err != nil || rt.name != "" || rt.ref != "" {
				t.Fatalf("parseRoute(%q) = %+v, %v", path, rt, err)
			}
			return
		}
		if err != nil {
			if err.Code != oci.CodeNameInvalid || oci.ValidateName(rt.name) == nil {
				t.Fatalf("parseRoute(%q): %v for name %q", path, err, rt.name)
			}
			return
		}
		if oci.ValidateName(rt.name) != nil {
			t.Fatalf("parseRoute(%q) accepted invalid name %q", path, rt.name)
		}
		if strings.Contains(rt.ref, "/") {
			t.Fatalf("parseRoute(%q): reference %q contains '/'", path, rt.ref)
		}
		if rt.kind != routeUploadStart && rt.kind != routeTags && rt.ref == "" {
			t.Fatalf("parseRoute(%q): empty reference", path)
		}
		back := buildPath(rt)
		if back != path && !(rt.kind == routeUploadStart && back == path+"/") {
			t.Fatalf("parseRoute(%q) = %+v, which builds back to %q", path, rt, back)
		}
	})
}

// FuzzRouteRoundTrip builds paths from valid names and references and
// checks that they parse back to the same route.
func FuzzRouteRoundTrip(f *testing.F) {
	f.Add("library/alpine", "latest", uint8(routeManifest))
	f.Add("blobs/uploads", "x", uint8(routeUpload))
	f.Add("a/tags/list", "", uint8(routeTags))
	f.Add("manifests", "manifests", uint8(routeBlob))
	f.Fuzz(func(t *testing.T, name, ref string, k uint8) {
		kind := routeKind(k%uint8(routeReferrers)) + 1
		if kind == routeBase || kind == routeCatalog {
			return
		}
		if oci.ValidateName(name) != nil {
			return
		}
		if kind == routeTags || kind == routeUploadStart {
			ref = ""
		} else if ref == "" || strings.Contains(ref, "/") {
			return
		}
		want := route{kind: kind, name: name, ref: ref}
		p := buildPath(want)
		got, err := parseRoute(p)
		if err != nil || got != want {
			t.Fatalf("parseRoute(%q) = %+v, %v; want %+v", p, got, err, want)
		}
	})
}

// FuzzParseContentRange checks that an accepted Content-Range is a
// non-empty range whose length does not overflow.
func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"0-999", "1000-1999", "bytes 0-9/10", "bytes=5-6", "0-0", "5-4", "-1-3", "0-9223372036854775807", "9223372036854775806-9223372036854775807", "a-b", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		start, end, err := parseContentRange(s)
		if err != nil {
			e, ok := err.(*Error)
			if !ok || e.Status != 416 || e.Code != oci.CodeBlobUploadInvalid {
				t.Fatalf("parseContentRange(%q): %v", s, err)
			}
			return
		}
		if start < 0 || end < start || end-start+1 <= 0 {
			t.Fatalf("parseContentRange(%q) = %d, %d", s, start, end)
		}
	})
}
