package auth

import (
	"context"
	"slices"
)

// Visible is what a caller may pull, in a form a search filters by in its
// query rather than repository by repository: everything, the
// repositories of public projects, those of further projects (a project's
// repositories are those it is the longest covering path of, as Allowed
// decides), and single repositories (a registry access token's grants).
// The zero value sees nothing. It grants pull exactly where Allowed does.
type Visible struct {
	All          bool
	Public       bool
	Projects     []string
	Repositories []string
}

// Visible returns what p may pull (Allowed's ActionPull), as a filter.
func (s *Service) Visible(ctx context.Context, p Principal) (Visible, error) {
	switch p.Kind {
	case KindAdminToken:
		return Visible{All: true}, nil
	case KindAnonymous:
		return Visible{Public: true}, nil
	case KindUser, KindPAT:
		if p.Kind == KindPAT && !slices.Contains(patScopeActions(p.Scopes), ActionPull) {
			return Visible{}, nil // a delete-only token pulls nothing, not even public images
		}
		if p.Admin {
			return Visible{All: true}, nil
		}
		projects, err := s.store.UserProjects(ctx, p.User)
		return Visible{Public: true, Projects: projects}, err
	case KindJob, KindOIDC:
		v := Visible{Public: true, Projects: []string{p.Project}}
		if p.User != "" {
			more, err := s.store.UserProjects(ctx, p.User)
			if err != nil {
				return Visible{}, err
			}
			for _, m := range more {
				if !slices.Contains(v.Projects, m) {
					v.Projects = append(v.Projects, m)
				}
			}
		}
		return v, nil
	}
	return Visible{}, nil
}

// visibleByAccess is what a registry access token's grants let pull.
func visibleByAccess(access []Access) Visible {
	var v Visible
	for _, a := range access {
		if a.Type == TypeRepository && (slices.Contains(a.Actions, ActionPull) || slices.Contains(a.Actions, ActionAll)) &&
			!slices.Contains(v.Repositories, a.Name) {
			v.Repositories = append(v.Repositories, a.Name)
		}
	}
	return v
}
