package oci

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
)

// MaxNameLength is the longest repository name accepted. Most clients cap
// host + "/" + name at 255 characters, so the name alone may not exceed it.
const MaxNameLength = 255

// Patterns are compiled on first use, not at package init: every hallmark
// process (a CLI run too) would otherwise pay for them at start-up.
var (
	nameRE = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$`)
	})
	tagRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`) })
)

// ValidateName reports whether name is a valid repository name per the OCI
// distribution spec (lower-case path components separated by '/').
func ValidateName(name string) error {
	if name == "" {
		return fmt.Errorf("repository name is empty")
	}
	if len(name) > MaxNameLength {
		return fmt.Errorf("repository name is %d characters long; the limit is %d", len(name), MaxNameLength)
	}
	if !nameRE().MatchString(name) {
		return fmt.Errorf("repository name %q is invalid: use lower-case letters, digits and the separators '.', '_', '__', '-' inside components joined by '/'", name)
	}
	return nil
}

// ValidTag reports whether tag matches the OCI tag grammar.
func ValidTag(tag string) bool { return tagRE().MatchString(tag) }

// IsDigestReference reports whether a manifest reference looks like a digest
// ("algorithm:encoded") rather than a tag. Tags cannot contain ':'.
func IsDigestReference(ref string) bool { return strings.Contains(ref, ":") }
