package auth

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/hallmark-dev/hallmark/pkg/oci"
)

// Actions in the docker token-auth vocabulary.
const (
	ActionPull   = "pull"
	ActionPush   = "push"
	ActionDelete = "delete"
	ActionAll    = "*"
)

// Resource types.
const (
	TypeRepository = "repository"
	TypeRegistry   = "registry"
)

// CatalogName is the registry resource guarding /v2/_catalog.
const CatalogName = "catalog"

// Limits on token requests, so a hostile request cannot make the server do
// unbounded work.
const (
	maxScopes      = 64
	maxScopeLength = 512
)

// ErrBadScope is returned for a scope string that does not follow the
// grammar type:name:action[,action].
var ErrBadScope = errors.New("malformed scope")

// Access is one entry of a token's `access` claim: a resource and the
// actions granted (or requested) on it.
type Access struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// String formats a in scope syntax, e.g. repository:group/app:pull,push.
func (a Access) String() string {
	return a.Type + ":" + a.Name + ":" + strings.Join(a.Actions, ",")
}

// Allows reports whether a grants action (or "*") on typ:name.
func (a Access) Allows(typ, name, action string) bool {
	if a.Type != typ || a.Name != name {
		return false
	}
	return slices.Contains(a.Actions, action) || slices.Contains(a.Actions, ActionAll)
}

// ParseScopes parses the scope parameters of a token request. Each value
// may hold several space-separated scopes; values may repeat. The resource
// name may itself contain ':' (a host:port prefix), so the type ends at the
// first ':' and the actions start after the last one. A resource class such
// as repository(plugin) is accepted and ignored. Scopes naming the same
// resource are merged. Unknown resource types are kept (and later granted
// nothing), as the spec asks token servers to ignore what they do not know.
func ParseScopes(values []string) ([]Access, error) {
	var out []Access
	idx := map[string]int{}
	n := 0
	for _, v := range values {
		for _, s := range strings.Fields(v) {
			n++
			if n > maxScopes {
				return nil, fmt.Errorf("%w: more than %d scopes in one token request", ErrBadScope, maxScopes)
			}
			a, err := parseScope(s)
			if err != nil {
				return nil, err
			}
			key := a.Type + "\x00" + a.Name
			if i, ok := idx[key]; ok {
				out[i].Actions = mergeActions(out[i].Actions, a.Actions)
				continue
			}
			idx[key] = len(out)
			out = append(out, a)
		}
	}
	return out, nil
}

func parseScope(s string) (Access, error) {
	if len(s) > maxScopeLength {
		return Access{}, fmt.Errorf("%w: scope longer than %d bytes", ErrBadScope, maxScopeLength)
	}
	typ, rest, ok := strings.Cut(s, ":")
	i := strings.LastIndexByte(rest, ':')
	if !ok || i < 0 {
		return Access{}, fmt.Errorf("%w %q: want type:name:actions, e.g. repository:group/app:pull,push", ErrBadScope, s)
	}
	name, actions := rest[:i], rest[i+1:]
	if j := strings.IndexByte(typ, '('); j >= 0 {
		if !strings.HasSuffix(typ, ")") {
			return Access{}, fmt.Errorf("%w %q: unterminated resource class", ErrBadScope, s)
		}
		typ = typ[:j]
	}
	if typ == "" || name == "" {
		return Access{}, fmt.Errorf("%w %q: empty resource type or name", ErrBadScope, s)
	}
	var acts []string
	for _, a := range strings.Split(actions, ",") {
		if a == "" {
			continue
		}
		acts = mergeActions(acts, []string{a})
	}
	return Access{Type: typ, Name: name, Actions: acts}, nil
}

// mergeActions returns the union of a and b, sorted, without duplicates.
func mergeActions(a, b []string) []string {
	out := slices.Clone(a)
	for _, x := range b {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	sort.Strings(out)
	return out
}

// expand turns "*" into the concrete actions of the resource type.
func expand(typ string, actions []string) []string {
	if !slices.Contains(actions, ActionAll) {
		return actions
	}
	if typ == TypeRepository {
		return mergeActions(actions, []string{ActionPull, ActionPush, ActionDelete})
	}
	return actions
}

// intersect returns the requested actions that allowed contains. "*" in
// allowed grants everything requested; "*" requested is granted only when
// allowed holds "*" (registry resources) or every concrete action
// (repositories, where it is expanded first).
func intersect(typ string, requested, allowed []string) []string {
	requested = expand(typ, requested)
	allowed = expand(typ, allowed)
	var out []string
	for _, a := range requested {
		if slices.Contains(allowed, a) {
			out = append(out, a)
		}
	}
	if typ == TypeRepository {
		// "*" was expanded; report concrete actions only.
		out = slices.DeleteFunc(out, func(a string) bool { return a == ActionAll })
	}
	sort.Strings(out)
	return out
}

// validRepository reports whether name is a repository name this registry
// could serve.
func validRepository(name string) bool { return oci.ValidateName(name) == nil }
