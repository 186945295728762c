package web

import "github.com/hallmark-dev/hallmark/internal/meta"

// Image statuses the console shows besides the signature statuses of the
// index: an image without signatures is unsigned; a signature status the
// console does not know (a newer indexer's) counts as other.
const (
	StatusUntrusted = meta.StatusUntrusted // signature verifies, but the project's trust policy does not allow its signer
	StatusUnsigned  = "unsigned"
	StatusOther     = "other"
)

// statusOrder ranks signature statuses from best to worst: an image's
// status is the best status among its signatures.
var statusOrder = []string{meta.StatusVerified, StatusUntrusted, meta.StatusInvalid, meta.StatusUnverified}

// statusRank returns the rank of a signature status (lower is better);
// unknown statuses rank after every known one.
func statusRank(s string) int {
	for i, st := range statusOrder {
		if st == s {
			return i
		}
	}
	return len(statusOrder)
}

// ImageStatus is the status of an image whose signatures have the given
// statuses (counts by status): the best of them (verified > untrusted >
// invalid > unverified > any other), or unsigned without signatures. It is
// the one definition of "image status" the console uses; the overview's
// counts rank in SQL by the same order (statusOrder).
func ImageStatus(counts map[string]int) string {
	best, bestRank := StatusUnsigned, len(statusOrder)+1
	for st, n := range counts {
		if n <= 0 {
			continue
		}
		if r := statusRank(st); r < bestRank || (r == bestRank && st < best) {
			best, bestRank = st, r
		}
	}
	return best
}

// badgeClass maps a status to the CSS class of its badge; statuses the
// console does not know get the neutral badge.
func badgeClass(status string) string {
	switch status {
	case meta.StatusVerified, "attested", "match":
		return "badge ok"
	case StatusUntrusted, meta.StatusUnverified, "self-asserted":
		return "badge warn"
	case meta.StatusInvalid, "contradicted", "failed":
		return "badge bad"
	case StatusUnsigned:
		return "badge none"
	}
	return "badge neutral"
}
