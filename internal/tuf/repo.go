package tuf

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/hallmark-dev/hallmark/internal/periodic"
)

// Target names sigstore clients look for (sigstore-go pkg/root, cosign).
const (
	TrustedRootTarget   = "trusted_root.json"
	SigningConfigTarget = "signing_config.v0.2.json"
)

// The top-level roles.
const (
	RoleRoot      = metadata.ROOT
	RoleTargets   = metadata.TARGETS
	RoleSnapshot  = metadata.SNAPSHOT
	RoleTimestamp = metadata.TIMESTAMP
)

// Roles lists the top-level roles, root first.
func Roles() []string { return []string{RoleRoot, RoleTargets, RoleSnapshot, RoleTimestamp} }

// ErrUninitialized is returned by operations that need a repository before
// the first Publish created one.
var ErrUninitialized = errors.New("tuf: the repository has not been created yet (the server creates it on its first start)")

// Config configures a Repository. Each role's metadata is re-signed once
// less than half of its lifetime is left.
type Config struct {
	RootExpiry      time.Duration // default 365 days
	TargetsExpiry   time.Duration // default 90 days
	SnapshotExpiry  time.Duration // default 14 days
	TimestampExpiry time.Duration // default 24 hours
	// CheckInterval is how often Maintain looks for metadata to renew;
	// default an eighth of TimestampExpiry, at most an hour.
	CheckInterval time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// minExpiry is the shortest lifetime a role may be given: expiry times
// are whole seconds.
const minExpiry = 2 * time.Second

// Repository is a TUF repository kept in a Store, signed with Keys. It
// holds no state of its own between calls: every change locks the store,
// reads the newest metadata, and writes what it re-signed, so several
// processes (the server, `hallmark tuf`) can share one store.
type Repository struct {
	store Store
	keys  Keys
	log   *slog.Logger
	cfg   Config
}

// New returns the repository in store, signed with keys.
func New(store Store, keys Keys, log *slog.Logger, cfg Config) (*Repository, error) {
	if store == nil || keys == nil {
		return nil, errors.New("tuf: a store and a key holder are required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&cfg.RootExpiry, 365*24*time.Hour)
	def(&cfg.TargetsExpiry, 90*24*time.Hour)
	def(&cfg.SnapshotExpiry, 14*24*time.Hour)
	def(&cfg.TimestampExpiry, 24*time.Hour)
	def(&cfg.CheckInterval, min(cfg.TimestampExpiry/8, time.Hour))
	for role, d := range map[string]time.Duration{RoleRoot: cfg.RootExpiry, RoleTargets: cfg.TargetsExpiry, RoleSnapshot: cfg.SnapshotExpiry, RoleTimestamp: cfg.TimestampExpiry} {
		if d < minExpiry {
			return nil, fmt.Errorf("tuf: %s expiry %v is shorter than %v", role, d, minExpiry)
		}
	}
	if cfg.CheckInterval <= 0 {
		return nil, errors.New("tuf: the check interval must be positive")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Repository{store: store, keys: keys, log: log, cfg: cfg}, nil
}

func (r *Repository) expiry(role string) time.Duration {
	switch role {
	case RoleRoot:
		return r.cfg.RootExpiry
	case RoleTargets:
		return r.cfg.TargetsExpiry
	case RoleSnapshot:
		return r.cfg.SnapshotExpiry
	}
	return r.cfg.TimestampExpiry
}

// state is the newest metadata of each role, and what an operation
// changed.
type state struct {
	root      *metadata.Metadata[metadata.RootType]
	prevRoot  *metadata.Metadata[metadata.RootType] // the version before root, when loaded
	targets   *metadata.Metadata[metadata.TargetsType]
	snapshot  *metadata.Metadata[metadata.SnapshotType]
	timestamp *metadata.Metadata[metadata.TimestampType]

	newTargets  map[string]*metadata.TargetFiles // replaces the list of targets when not nil
	targetFiles []File                           // target contents to write first
	rootFiles   []File                           // new root versions, oldest first
	out         []File                           // targets, snapshot, timestamp metadata
	rootJSON    []byte                           // root.json to write last, when it changed
	written     []string                         // roles signed anew, for the log
	retired     []string                         // key IDs no role uses any more
}

func versionedName(role string, v int64) string { return fmt.Sprintf("%d.%s.json", v, role) }

// load reads the newest metadata. An empty store yields an empty state.
func (r *Repository) load(ctx context.Context) (*state, error) {
	st := &state{}
	raw, err := r.store.Get(ctx, rootFile)
	if errors.Is(err, ErrNotFound) {
		return st, nil
	}
	if err != nil {
		return nil, err
	}
	if st.root, err = parse(metadata.Root(), rootFile, raw); err != nil {
		return nil, err
	}
	// A version written before root.json was replaced (a crash between
	// the two) may have reached clients already: it is the newest.
	for {
		name := versionedName(RoleRoot, st.root.Signed.Version+1)
		raw, err := r.store.Get(ctx, name)
		if errors.Is(err, ErrNotFound) {
			break
		}
		if err != nil {
			return nil, err
		}
		next, err := parse(metadata.Root(), name, raw)
		if err != nil {
			return nil, err
		}
		if st.root.VerifyDelegate(RoleRoot, next) != nil || next.VerifyDelegate(RoleRoot, next) != nil {
			return nil, fmt.Errorf("tuf: the stored %s is not signed by the root keys of versions %d and %d: %w", name, st.root.Signed.Version, next.Signed.Version, errTampered)
		}
		st.prevRoot, st.root, st.rootJSON = st.root, next, raw
	}
	if raw, err = r.store.Get(ctx, timestampFile); errors.Is(err, ErrNotFound) {
		return st, nil // a crash while the repository was created: settle completes it
	} else if err != nil {
		return nil, err
	}
	if st.timestamp, err = parse(metadata.Timestamp(), timestampFile, raw); err != nil {
		return nil, err
	}
	sm, ok := st.timestamp.Signed.Meta["snapshot.json"]
	if !ok {
		return nil, errors.New("tuf: the stored timestamp.json names no snapshot")
	}
	name := versionedName(RoleSnapshot, sm.Version)
	if raw, err = r.store.Get(ctx, name); err != nil {
		return nil, err
	}
	if st.snapshot, err = parse(metadata.Snapshot(), name, raw); err != nil {
		return nil, err
	}
	tm, ok := st.snapshot.Signed.Meta["targets.json"]
	if !ok {
		return nil, fmt.Errorf("tuf: the stored %s names no targets", name)
	}
	name = versionedName(RoleTargets, tm.Version)
	if raw, err = r.store.Get(ctx, name); err != nil {
		return nil, err
	}
	if st.targets, err = parse(metadata.Targets(), name, raw); err != nil {
		return nil, err
	}
	for _, c := range []struct {
		role string
		md   any
	}{{RoleTargets, st.targets}, {RoleSnapshot, st.snapshot}, {RoleTimestamp, st.timestamp}} {
		if err := r.checkStored(ctx, st, c.role, c.md); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// errTampered says what to do about stored metadata no key of ours signed.
var errTampered = errors.New("it was changed without the repository's keys; restore the repository from a backup")

// checkStored makes sure stored metadata of role was signed with our keys:
// those the newest root gives the role, or those of the root before it (a
// rotation interrupted before it signed the role anew). Metadata that
// neither verifies is never signed anew: that would vouch for content
// someone else wrote.
func (r *Repository) checkStored(ctx context.Context, st *state, role string, md any) error {
	if st.root.VerifyDelegate(role, md) == nil {
		return nil
	}
	if st.prevRoot == nil && st.root.Signed.Version > 1 {
		name := versionedName(RoleRoot, st.root.Signed.Version-1)
		raw, err := r.store.Get(ctx, name)
		if err != nil {
			return err
		}
		if st.prevRoot, err = parse(metadata.Root(), name, raw); err != nil {
			return err
		}
	}
	if st.prevRoot != nil && st.prevRoot.VerifyDelegate(role, md) == nil {
		return nil
	}
	return fmt.Errorf("tuf: the stored %s metadata is not signed with the %s key of root version %d: %w", role, role, st.root.Signed.Version, errTampered)
}

func parse[T metadata.Roles](md *metadata.Metadata[T], name string, raw []byte) (*metadata.Metadata[T], error) {
	m, err := md.FromBytes(raw)
	if err != nil {
		return nil, fmt.Errorf("tuf: the stored %s is not valid metadata: %w", name, err)
	}
	return m, nil
}

// change runs fn on the newest state under the store's lock, then
// re-signs what fn changed, what the newest root's keys no longer verify
// and what is past half its lifetime, and writes it: target files, new
// root versions, targets, snapshot, timestamp, root.json.
func (r *Repository) change(ctx context.Context, fn func(context.Context, *state) error) (*state, error) {
	unlock, err := r.store.Lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	st, err := r.load(ctx)
	if err != nil {
		return nil, err
	}
	if fn != nil {
		if err := fn(ctx, st); err != nil {
			return nil, err
		}
	}
	if st.root == nil {
		return nil, ErrUninitialized
	}
	if err := r.settle(ctx, st); err != nil {
		return nil, err
	}
	files := slices.Concat(st.targetFiles, st.rootFiles, st.out)
	if st.rootJSON != nil {
		files = append(files, File{Name: rootFile, Data: st.rootJSON})
	}
	if len(files) == 0 {
		return st, nil
	}
	if err := r.store.Put(ctx, files); err != nil {
		return nil, err
	}
	for _, id := range st.retired {
		if err := r.keys.Remove(ctx, id); err != nil {
			r.log.WarnContext(ctx, "tuf: removing a retired key", "key_id", id, "err", err)
		}
	}
	if len(st.written) > 0 {
		r.log.InfoContext(ctx, "tuf: signed new metadata", "roles", st.written, "root_version", st.root.Signed.Version,
			"targets_version", st.targets.Signed.Version, "timestamp_expires", st.timestamp.Signed.Expires)
	}
	return st, nil
}

// due reports whether metadata of role expiring at exp must be re-signed:
// less than half its lifetime is left.
func (r *Repository) due(role string, exp time.Time) bool {
	return exp.Sub(r.cfg.Now()) < r.expiry(role)/2
}

func (r *Repository) expires(role string) time.Time {
	return r.cfg.Now().Add(r.expiry(role)).UTC().Truncate(time.Second)
}

// settle re-signs, in order, the root (half expired), then targets,
// snapshot and timestamp when changed, half expired, not signed with the
// newest root's keys, or when what they point at was re-signed.
func (r *Repository) settle(ctx context.Context, st *state) error {
	if r.due(RoleRoot, st.root.Signed.Expires) {
		if err := r.newRoot(ctx, st, nil); err != nil {
			return err
		}
	}
	resign := func(role string, md any, exp time.Time) bool {
		return st.root.VerifyDelegate(role, md) != nil || r.due(role, exp)
	}

	signedTargets := st.targets == nil || st.newTargets != nil || resign(RoleTargets, st.targets, st.targets.Signed.Expires)
	if signedTargets {
		t := metadata.Targets(r.expires(RoleTargets))
		if st.targets != nil {
			t.Signed.Version = st.targets.Signed.Version + 1
			t.Signed.Targets = st.targets.Signed.Targets
		}
		if st.newTargets != nil {
			t.Signed.Targets = st.newTargets
		}
		if err := r.sign(ctx, st, RoleTargets, t, versionedName(RoleTargets, t.Signed.Version)); err != nil {
			return err
		}
		st.targets = t
	}

	var snapshotMeta *metadata.MetaFiles
	if signedTargets || st.snapshot == nil || resign(RoleSnapshot, st.snapshot, st.snapshot.Signed.Expires) {
		s := metadata.Snapshot(r.expires(RoleSnapshot))
		if st.snapshot != nil {
			s.Signed.Version = st.snapshot.Signed.Version + 1
		}
		s.Signed.Meta["targets.json"] = metadata.MetaFile(st.targets.Signed.Version)
		if err := r.sign(ctx, st, RoleSnapshot, s, versionedName(RoleSnapshot, s.Signed.Version)); err != nil {
			return err
		}
		st.snapshot = s
		raw := st.out[len(st.out)-1].Data
		sum := sha256.Sum256(raw)
		snapshotMeta = &metadata.MetaFiles{Version: s.Signed.Version, Length: int64(len(raw)), Hashes: metadata.Hashes{"sha256": sum[:]}}
	}

	if snapshotMeta != nil || st.timestamp == nil || resign(RoleTimestamp, st.timestamp, st.timestamp.Signed.Expires) {
		t := metadata.Timestamp(r.expires(RoleTimestamp))
		if st.timestamp != nil {
			t.Signed.Version = st.timestamp.Signed.Version + 1
			t.Signed.Meta["snapshot.json"] = st.timestamp.Signed.Meta["snapshot.json"]
		}
		if snapshotMeta != nil {
			t.Signed.Meta["snapshot.json"] = snapshotMeta
		}
		if err := r.sign(ctx, st, RoleTimestamp, t, timestampFile); err != nil {
			return err
		}
		st.timestamp = t
	}
	return nil
}

// sign signs md with the keys the newest root gives role, checks the
// result verifies, and queues it for writing as name.
func (r *Repository) sign(ctx context.Context, st *state, role string, md any, name string) error {
	ids := st.root.Signed.Roles[role].KeyIDs
	var raw []byte
	var err error
	switch m := md.(type) {
	case *metadata.Metadata[metadata.TargetsType]:
		raw, err = signWith(ctx, r.keys, ids, m)
	case *metadata.Metadata[metadata.SnapshotType]:
		raw, err = signWith(ctx, r.keys, ids, m)
	case *metadata.Metadata[metadata.TimestampType]:
		raw, err = signWith(ctx, r.keys, ids, m)
	default:
		err = fmt.Errorf("tuf: cannot sign %T", md)
	}
	if err != nil {
		return fmt.Errorf("tuf: signing %s: %w", role, err)
	}
	if err := st.root.VerifyDelegate(role, md); err != nil {
		return fmt.Errorf("tuf: the new %s metadata does not verify under root version %d: %w", role, st.root.Signed.Version, err)
	}
	st.out = append(st.out, File{Name: name, Data: raw})
	st.written = append(st.written, role)
	return nil
}

// signWith replaces md's signatures with signatures by the keys ids and
// encodes it.
func signWith[T metadata.Roles](ctx context.Context, keys Keys, ids []string, md *metadata.Metadata[T]) ([]byte, error) {
	md.ClearSignatures()
	for _, id := range slices.Compact(slices.Sorted(slices.Values(ids))) {
		k, err := keys.Signer(ctx, id)
		if err != nil {
			return nil, err
		}
		s, err := loadSigner(k)
		if err != nil {
			return nil, err
		}
		if _, err := md.Sign(s); err != nil {
			return nil, err
		}
	}
	return md.ToBytes(true)
}

// loadSigner adapts a key to go-tuf: Ed25519 (what Generate makes) or
// ECDSA with SHA-256 (ecdsa-sha2-nistp256).
func loadSigner(k crypto.Signer) (signature.Signer, error) {
	switch k.Public().(type) {
	case ed25519.PublicKey, *ecdsa.PublicKey:
		return signature.LoadSigner(k, crypto.SHA256)
	}
	return nil, fmt.Errorf("tuf: %T keys are not supported; use Ed25519 or ECDSA P-256", k.Public())
}

// newRoot makes the next root version: a copy of the newest with fresh
// expiry, changed by mutate (may be nil), signed by the root keys of both
// the newest and the new version, as TUF clients require to follow it.
func (r *Repository) newRoot(ctx context.Context, st *state, mutate func(*metadata.RootType) error) error {
	raw, err := st.root.ToBytes(false)
	if err != nil {
		return err
	}
	next, err := metadata.Root().FromBytes(raw)
	if err != nil {
		return err
	}
	next.Signed.Version++
	next.Signed.Expires = r.expires(RoleRoot)
	if mutate != nil {
		if err := mutate(&next.Signed); err != nil {
			return err
		}
	}
	ids := slices.Concat(st.root.Signed.Roles[RoleRoot].KeyIDs, next.Signed.Roles[RoleRoot].KeyIDs)
	if raw, err = signWith(ctx, r.keys, ids, next); err != nil {
		return fmt.Errorf("tuf: signing root version %d: %w", next.Signed.Version, err)
	}
	if err := st.root.VerifyDelegate(RoleRoot, next); err != nil {
		return fmt.Errorf("tuf: root version %d does not verify under version %d: %w", next.Signed.Version, st.root.Signed.Version, err)
	}
	if err := next.VerifyDelegate(RoleRoot, next); err != nil {
		return fmt.Errorf("tuf: root version %d does not verify under its own keys: %w", next.Signed.Version, err)
	}
	st.rootFiles = append(st.rootFiles, File{Name: versionedName(RoleRoot, next.Signed.Version), Data: raw})
	st.rootJSON = raw
	st.root = next
	st.written = append(st.written, RoleRoot)
	return nil
}

// newKey creates and stores a key for role and returns its public part.
func (r *Repository) newKey(ctx context.Context, role string) (*metadata.Key, error) {
	k, err := r.keys.Generate(ctx)
	if err != nil {
		return nil, fmt.Errorf("tuf: creating a %s key: %w", role, err)
	}
	return metadata.KeyFromPublicKey(k.Public())
}

// create makes version 1 of the root with a new key for each role.
func (r *Repository) create(ctx context.Context, st *state) error {
	root := metadata.Root(r.expires(RoleRoot))
	for _, role := range Roles() {
		key, err := r.newKey(ctx, role)
		if err != nil {
			return err
		}
		if err := root.Signed.AddKey(key, role); err != nil {
			return err
		}
	}
	raw, err := signWith(ctx, r.keys, root.Signed.Roles[RoleRoot].KeyIDs, root)
	if err != nil {
		return fmt.Errorf("tuf: signing root version 1: %w", err)
	}
	if err := root.VerifyDelegate(RoleRoot, root); err != nil {
		return fmt.Errorf("tuf: root version 1 does not verify: %w", err)
	}
	st.root = root
	st.rootFiles = []File{{Name: versionedName(RoleRoot, 1), Data: raw}}
	st.rootJSON = raw
	st.written = append(st.written, RoleRoot)
	return nil
}

// Publish makes targets (name -> content) the repository's targets,
// creating the repository (keys and version 1 of every role) on first
// use. A change of any target signs new targets, snapshot and timestamp
// metadata; it reports whether it did.
func (r *Repository) Publish(ctx context.Context, targets map[string][]byte) (bool, error) {
	published := false
	_, err := r.change(ctx, func(ctx context.Context, st *state) error {
		if st.root == nil {
			if err := r.create(ctx, st); err != nil {
				return err
			}
		}
		want := map[string]*metadata.TargetFiles{}
		for _, name := range slices.Sorted(maps.Keys(targets)) {
			if !ValidTargetName(name) {
				return fmt.Errorf("tuf: target name %q: use 1 to %d of [A-Za-z0-9._-], not starting with a dot", name, maxTargetName)
			}
			tf, err := metadata.TargetFile().FromBytes(name, targets[name], "sha256")
			if err != nil {
				return err
			}
			want[name] = tf
			sum := sha256.Sum256(targets[name])
			st.targetFiles = append(st.targetFiles, File{Name: fmt.Sprintf("%s%x.%s", targetsDir, sum, name), Data: targets[name]})
		}
		if st.targets == nil || !sameTargets(st.targets.Signed.Targets, want) {
			st.newTargets = want
			published = true
		}
		return nil
	})
	return published, err
}

func sameTargets(a, b map[string]*metadata.TargetFiles) bool {
	return maps.EqualFunc(a, b, func(x, y *metadata.TargetFiles) bool {
		return x.Length == y.Length && x.Hashes.Equal(y.Hashes)
	})
}

// Renew re-signs whatever metadata is past half its lifetime (and what
// points at it) and returns the roles it signed anew.
func (r *Repository) Renew(ctx context.Context) ([]string, error) {
	st, err := r.change(ctx, nil)
	if err != nil {
		return nil, err
	}
	return st.written, nil
}

// Rotate gives role a new key: a new root version names it in place of
// the old one, signed by the old and the new root keys (rotating the root
// key) or by the root key (other roles), so that clients holding any
// earlier root follow the chain. The role's metadata, and what points at
// it, is signed anew with the new key; the old key is deleted. It returns
// the new root version and the new key ID.
func (r *Repository) Rotate(ctx context.Context, role string) (int64, string, error) {
	if !slices.Contains(Roles(), role) {
		return 0, "", fmt.Errorf("tuf: no role %q: rotate one of %v", role, Roles())
	}
	var newID string
	st, err := r.change(ctx, func(ctx context.Context, st *state) error {
		if st.root == nil {
			return ErrUninitialized
		}
		key, err := r.newKey(ctx, role)
		if err != nil {
			return err
		}
		if newID, err = key.ID(); err != nil {
			return err
		}
		old := slices.Clone(st.root.Signed.Roles[role].KeyIDs)
		return r.newRoot(ctx, st, func(next *metadata.RootType) error {
			for _, id := range old {
				if err := next.RevokeKey(id, role); err != nil {
					return err
				}
				if _, used := next.Keys[id]; !used {
					st.retired = append(st.retired, id)
				}
			}
			return next.AddKey(key, role)
		})
	})
	if err != nil {
		return 0, "", err
	}
	return st.root.Signed.Version, newID, nil
}

// RoleStatus describes the newest metadata of one role.
type RoleStatus struct {
	Role      string    `json:"role"`
	Version   int64     `json:"version"`
	Expires   time.Time `json:"expires"`
	KeyIDs    []string  `json:"keyids"`
	Threshold int       `json:"threshold"`
}

// Status is the repository's newest metadata.
type Status struct {
	Roles   []RoleStatus      `json:"roles"`   // root, targets, snapshot, timestamp
	Targets map[string]string `json:"targets"` // name -> sha256 hex
}

// Status reads the newest metadata of each role.
func (r *Repository) Status(ctx context.Context) (*Status, error) {
	st, err := r.load(ctx)
	if err != nil {
		return nil, err
	}
	if st.root == nil || st.timestamp == nil {
		return nil, ErrUninitialized
	}
	out := &Status{Targets: map[string]string{}}
	for _, role := range Roles() {
		rs := RoleStatus{Role: role, KeyIDs: st.root.Signed.Roles[role].KeyIDs, Threshold: st.root.Signed.Roles[role].Threshold}
		switch role {
		case RoleRoot:
			rs.Version, rs.Expires = st.root.Signed.Version, st.root.Signed.Expires
		case RoleTargets:
			rs.Version, rs.Expires = st.targets.Signed.Version, st.targets.Signed.Expires
		case RoleSnapshot:
			rs.Version, rs.Expires = st.snapshot.Signed.Version, st.snapshot.Signed.Expires
		case RoleTimestamp:
			rs.Version, rs.Expires = st.timestamp.Signed.Version, st.timestamp.Signed.Expires
		}
		out.Roles = append(out.Roles, rs)
	}
	for name, tf := range st.targets.Signed.Targets {
		out.Targets[name] = tf.Hashes["sha256"].String()
	}
	return out, nil
}

// Root returns the newest root metadata: what a client is initialized with
// (`cosign initialize --root`). Any earlier version works too; the client
// then follows the chain to the newest.
func (r *Repository) Root(ctx context.Context) ([]byte, error) {
	st, err := r.load(ctx)
	if err != nil {
		return nil, err
	}
	if st.root == nil {
		return nil, ErrUninitialized
	}
	if st.rootJSON != nil {
		return st.rootJSON, nil
	}
	return r.store.Get(ctx, rootFile)
}

// Maintain renews metadata every CheckInterval until ctx is done, so that
// clients never see expired metadata while the server runs. Failures are
// logged and retried at the next tick.
func (r *Repository) Maintain(ctx context.Context) {
	periodic.Every(ctx, r.cfg.CheckInterval, func(ctx context.Context) {
		if _, err := r.Renew(ctx); err != nil && ctx.Err() == nil {
			r.log.ErrorContext(ctx, "tuf: renewing metadata failed; clients refuse the repository once its timestamp expires", "err", err)
		}
	})
}
