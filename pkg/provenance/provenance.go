package provenance

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// LookupFunc reads one environment variable; os.LookupEnv is one.
type LookupFunc func(key string) (string, bool)

// Provider collects annotations in one kind of CI system.
type Provider interface {
	// Name is a human-readable name used in errors, e.g. "GitLab CI".
	Name() string
	// Detect reports whether env is a job of this CI system.
	Detect(env LookupFunc) bool
	// Annotations returns the provider's complete annotation set, or a
	// *MissingVariablesError naming every variable that is unset or empty.
	Annotations(env LookupFunc, opts Options) (map[string]string, error)
}

// Options tune what the providers collect.
type Options struct {
	// ImageTag is the tag of the image being signed, written as the "tag"
	// annotation. Empty: IMAGE_TAG from the environment (the variable
	// GitLab's tutorial defines), else the commit's short SHA (the
	// tutorial's value of IMAGE_TAG).
	ImageTag string
}

// Option sets an Options field.
type Option func(*Options)

// WithImageTag sets Options.ImageTag.
func WithImageTag(tag string) Option { return func(o *Options) { o.ImageTag = tag } }

// Errors of Collect. A missing-variables error is a *MissingVariablesError
// and matches ErrMissingVariables.
var (
	ErrNoCI             = errors.New("no supported CI environment detected (want GITLAB_CI=true for GitLab CI or GITHUB_ACTIONS=true for GitHub Actions); run inside a CI job or pass the annotations explicitly with -a key=value")
	ErrMissingVariables = errors.New("CI variables missing or empty")
)

// MissingVariablesError lists every variable a provider needed but found
// unset or empty.
type MissingVariablesError struct {
	Provider string
	Names    []string // in the order the annotations use them, without duplicates
}

func (e *MissingVariablesError) Error() string {
	return fmt.Sprintf("%s: %s: %s; these are predefined in every job, so check that the job exposes them (or pass the annotations explicitly with -a key=value)",
		e.Provider, ErrMissingVariables, strings.Join(e.Names, ", "))
}

// Is makes errors.Is(err, ErrMissingVariables) true.
func (e *MissingVariablesError) Is(target error) bool { return target == ErrMissingVariables }

// DefaultProviders returns the providers Collect tries, in order: GitLab CI,
// then GitHub Actions.
func DefaultProviders() []Provider { return []Provider{GitLab{}, GitHubActions{}} }

// Collect returns the provenance annotations of the CI job described by env
// with the first of DefaultProviders that detects it.
func Collect(env LookupFunc, opts ...Option) (map[string]string, error) {
	return CollectFrom(env, DefaultProviders(), opts...)
}

// CollectFrom is Collect with an explicit provider list. It returns
// ErrNoCI when no provider detects env.
func CollectFrom(env LookupFunc, providers []Provider, opts ...Option) (map[string]string, error) {
	if env == nil {
		return nil, ErrNoCI
	}
	var o Options
	for _, opt := range opts {
		opt(&o)
	}
	for _, p := range providers {
		if p.Detect(env) {
			return p.Annotations(env, o)
		}
	}
	return nil, ErrNoCI
}

// Merge returns a new map with the collected annotations overridden by the
// explicit ones (e.g. from -a): what the user asked for always wins.
func Merge(collected, explicit map[string]string) map[string]string {
	out := make(map[string]string, len(collected)+len(explicit))
	maps.Copy(out, collected)
	maps.Copy(out, explicit)
	return out
}

// reader reads variables and remembers the ones that are missing.
type reader struct {
	env     LookupFunc
	missing []string
}

// get returns the variable, recording it as missing when unset or empty.
func (r *reader) get(name string) string {
	v, ok := r.env(name)
	if !ok || v == "" {
		if !slices.Contains(r.missing, name) {
			r.missing = append(r.missing, name)
		}
		return ""
	}
	return v
}

// optional returns the variable or "" without recording it.
func (r *reader) optional(name string) string {
	v, _ := r.env(name)
	return v
}

// result returns ann, or the error listing every missing variable.
func (r *reader) result(provider string, ann map[string]string) (map[string]string, error) {
	if len(r.missing) > 0 {
		return nil, &MissingVariablesError{Provider: provider, Names: r.missing}
	}
	return ann, nil
}

// imageTag resolves the "tag" annotation: the explicit option, else
// IMAGE_TAG, else fallback() (evaluated only when needed, so that its
// variables are reported missing only when they are used).
func imageTag(r *reader, o Options, fallback func() string) string {
	if o.ImageTag != "" {
		return o.ImageTag
	}
	if t := r.optional("IMAGE_TAG"); t != "" {
		return t
	}
	return fallback()
}
