package ca

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/hallmark-dev/hallmark/internal/keystore"
)

// Generation is one of the CA's hierarchies (root and intermediate). A
// rotation adds a generation; the older ones stay trusted for what they
// issued before the next took over.
type Generation struct {
	N     int
	Chain []*x509.Certificate // intermediate, root
	// Until is when the next generation took over issuing (the first start
	// of a server with it); zero for the current generation.
	Until time.Time
}

// ErrRotationPending is returned by Rotate when the newest generation has
// not issued yet: a server must start with it first, so that the time the
// previous one stopped issuing is known.
var ErrRotationPending = errors.New("ca: the newest CA generation has not been taken into use yet")

// activationItem records (RFC 3339, in the key store) when a server first
// issued from generation n > 1: the end of generation n-1's validity.
func activationItem(n int) string { return fmt.Sprintf("ca-activated-%d", n) }

func readActivation(ctx context.Context, ks keystore.Store, n int) (time.Time, error) {
	it, err := ks.Get(ctx, activationItem(n))
	if err != nil {
		return time.Time{}, err
	}
	return parseActivation(ks, n, it.Data)
}

func parseActivation(ks keystore.Store, n int, raw []byte) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(string(raw)))
	if err != nil {
		return time.Time{}, fmt.Errorf("ca: %s is not an RFC 3339 time: %w", ks.Where(activationItem(n)), err)
	}
	return t, nil
}

// activate records now as generation n's start of issuing unless a record
// exists (a restart, or another replica first), and returns the record.
func activate(ctx context.Context, ks keystore.Store, n int, now time.Time) (time.Time, error) {
	it, err := keystore.LoadOrCreateItem(ctx, ks, activationItem(n), func() ([]byte, error) {
		return []byte(now.UTC().Format(time.RFC3339Nano) + "\n"), nil
	})
	if err != nil {
		return time.Time{}, err
	}
	return parseActivation(ks, n, it.Data)
}

// newestGeneration is the highest generation whose root certificate is in
// ks (1 when there is none beyond the first).
func newestGeneration(ctx context.Context, ks keystore.Store) (int, error) {
	n := 1
	for {
		_, err := ks.Get(ctx, keystore.KeyItem(generationNames(n+1).rootCert))
		if errors.Is(err, fs.ErrNotExist) {
			return n, nil
		}
		if err != nil {
			return 0, err
		}
		n++
	}
}

// loadGenerations loads every generation in ks, creating the first on
// first start, and records the newest as taken into use now.
func loadGenerations(ctx context.Context, ks keystore.Store, org string, kind keystore.Kind, now time.Time) (*hierarchy, []Generation, error) {
	n, err := newestGeneration(ctx, ks)
	if err != nil {
		return nil, nil, err
	}
	var gens []Generation
	var cur *hierarchy
	for g := 1; g <= n; g++ {
		h, err := loadOrCreateHierarchy(ctx, ks, generationNames(g), org, kind, now)
		if err != nil {
			return nil, nil, fmt.Errorf("CA generation %d: %w", g, err)
		}
		gens = append(gens, Generation{N: g, Chain: []*x509.Certificate{h.intermediate, h.root}})
		cur = h
	}
	if n > 1 {
		if _, err := activate(ctx, ks, n, now); err != nil {
			return nil, nil, err
		}
	}
	for i := range gens[:n-1] {
		until, err := readActivation(ctx, ks, gens[i].N+1)
		if err != nil {
			return nil, nil, fmt.Errorf("ca: generation %d has no record of when it took over from generation %d (%w); restore %s from a backup",
				gens[i].N+1, gens[i].N, err, ks.Where(activationItem(gens[i].N+1)))
		}
		gens[i].Until = until
	}
	return cur, gens, nil
}

// Rotate creates the next CA generation (new root and intermediate keys
// and certificates) in the key store ks. A server issues from it from its
// next start on, and publishes both in its trusted root, the previous one
// valid until that start, so that signatures made before keep verifying.
// Every server sharing the key store must be restarted. The new keys are
// of kind (ParseKeyType). It returns the new generation's number and root
// certificate.
func Rotate(ctx context.Context, ks keystore.Store, kind keystore.Kind, now time.Time) (int, *x509.Certificate, error) {
	n, err := newestGeneration(ctx, ks)
	if err != nil {
		return 0, nil, err
	}
	nm := generationNames(n)
	if _, err := ks.Get(ctx, keystore.KeyItem(nm.rootCert)); err != nil {
		return 0, nil, fmt.Errorf("ca: no CA in %s yet: start the server once to create it (%w)", ks.Where(keystore.KeyItem(nm.rootCert)), err)
	}
	if n > 1 {
		if _, err := readActivation(ctx, ks, n); err != nil {
			return 0, nil, fmt.Errorf("%w: restart the server (every replica) with generation %d before rotating again", ErrRotationPending, n)
		}
	}
	cur, _, err := loadGenerations(ctx, ks, "Hallmark", kind, now) // checks every generation, as a server start would
	if err != nil {
		return 0, nil, err
	}
	org := "Hallmark"
	if o := cur.root.Subject.Organization; len(o) > 0 {
		org = o[0]
	}
	h, err := loadOrCreateHierarchy(ctx, ks, generationNames(n+1), org, kind, now)
	if err != nil {
		return 0, nil, err
	}
	return n + 1, h.root, nil
}
