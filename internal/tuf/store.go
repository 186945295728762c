package tuf

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hallmark-dev/hallmark/pkg/root"
)

// ErrNotFound is returned for a file the repository does not hold.
var ErrNotFound = errors.New("tuf: no such file in the repository")

// ErrBadName is returned for a name outside the repository's layout.
var ErrBadName = errors.New("tuf: not a repository file name")

// File is one repository file: signed metadata or a target.
type File struct {
	Name string // e.g. "timestamp.json", "3.root.json", "targets/<sha256>.trusted_root.json"
	Data []byte
}

// Store keeps the repository's files and serialises changes to them. The
// files are public; what makes them trustworthy is their signatures.
type Store interface {
	// Get returns the file called name, or an error wrapping ErrNotFound.
	Get(ctx context.Context, name string) ([]byte, error)
	// Put writes files in the order given, each one atomically (a reader
	// sees the old or the new content, never part of it).
	Put(ctx context.Context, files []File) error
	// Lock holds the repository against every other writer (goroutines and
	// processes) until unlock is called.
	Lock(ctx context.Context) (unlock func(), err error)
}

// Names of the files the layout holds.
const (
	rootFile      = "root.json" // the newest root, for bootstrapping clients
	timestampFile = "timestamp.json"
	targetsDir    = "targets/"
	maxNameLen    = 200
	maxTargetName = 100
)

// CheckName reports whether name is a file of the repository layout:
// root.json, timestamp.json, <version>.root.json, <version>.snapshot.json,
// <version>.targets.json or targets/<sha256 hex>.<target name>. Anything
// else (traversal, other directories, odd characters) wraps ErrBadName.
func CheckName(name string) error {
	if len(name) > maxNameLen {
		return fmt.Errorf("%w: longer than %d bytes", ErrBadName, maxNameLen)
	}
	switch name {
	case rootFile, timestampFile:
		return nil
	}
	if rest, ok := strings.CutPrefix(name, targetsDir); ok {
		hash, target, ok := strings.Cut(rest, ".")
		if !ok || !isLowerHex(hash, 64) || !ValidTargetName(target) {
			return fmt.Errorf("%w: want targets/<sha256 hex>.<target name>", ErrBadName)
		}
		return nil
	}
	v, role, ok := strings.Cut(name, ".")
	if !ok || parseVersion(v) < 1 {
		return fmt.Errorf("%w: want <version>.<role>.json", ErrBadName)
	}
	switch role {
	case "root.json", "snapshot.json", "targets.json":
		return nil
	}
	return fmt.Errorf("%w: no role %q", ErrBadName, strings.TrimSuffix(role, ".json"))
}

// ValidTargetName reports whether name may name a target: 1 to 100 of
// [A-Za-z0-9._-], not starting with a dot.
func ValidTargetName(name string) bool {
	if name == "" || len(name) > maxTargetName || name[0] == '.' {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// parseVersion parses a metadata version as written in file names:
// decimal, no sign, no leading zero, at most 1<<31-1. It returns 0 for
// anything else.
func parseVersion(s string) int64 {
	if s == "" || len(s) > 10 || s[0] == '0' {
		return 0
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0
		}
	}
	v, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		return 0
	}
	return v
}

func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !(s[i] >= '0' && s[i] <= '9' || s[i] >= 'a' && s[i] <= 'f') {
			return false
		}
	}
	return true
}

// FileStore is a Store in a directory of the data dir: the files as
// clients fetch them (dir/3.root.json, dir/targets/<sha256>.<name>) and
// a lock file. It serialises writers on one machine with flock(2).
type FileStore struct{ dir string }

// NewFileStore returns the store in dir, creating it (0755: the files are
// public) if needed.
func NewFileStore(dir string) (*FileStore, error) {
	if err := os.MkdirAll(filepath.Join(dir, strings.TrimSuffix(targetsDir, "/")), 0o755); err != nil {
		return nil, fmt.Errorf("tuf: create %s: %w", dir, err)
	}
	return &FileStore{dir: dir}, nil
}

// Dir is the store's directory.
func (s *FileStore) Dir() string { return s.dir }

func (s *FileStore) path(name string) (string, error) {
	if err := CheckName(name); err != nil {
		return "", err
	}
	return filepath.Join(s.dir, filepath.FromSlash(name)), nil
}

// Get implements Store.
func (s *FileStore) Get(_ context.Context, name string) ([]byte, error) {
	p, err := s.path(name)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	if err != nil {
		return nil, fmt.Errorf("tuf: read %s: %w", name, err)
	}
	return b, nil
}

// Put implements Store: each file is written to a temporary file, synced
// and renamed over its name; the directories are synced at the end.
func (s *FileStore) Put(_ context.Context, files []File) error {
	for _, f := range files {
		p, err := s.path(f.Name)
		if err != nil {
			return err
		}
		if err := root.WriteFileAtomic(p, f.Data, 0o644); err != nil {
			return fmt.Errorf("tuf: write %s: %w", f.Name, err)
		}
	}
	for _, d := range []string{filepath.Join(s.dir, "targets"), s.dir} {
		if f, err := os.Open(d); err == nil {
			f.Sync()
			f.Close()
		}
	}
	return nil
}

// lockPoll is how often Lock retries a lock held by someone else.
const lockPoll = 20 * time.Millisecond

// Lock implements Store with an exclusive flock(2) on dir/.lock, which
// other processes (hallmark tuf ... while the server runs) and other
// goroutines (each takes its own open file) respect.
func (s *FileStore) Lock(ctx context.Context) (func(), error) {
	f, err := os.OpenFile(filepath.Join(s.dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("tuf: lock: %w", err)
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() {
				unix.Flock(int(f.Fd()), unix.LOCK_UN)
				f.Close()
			}, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("tuf: lock %s: %w", f.Name(), err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("tuf: waiting for the repository lock (another hallmark process is changing it): %w", ctx.Err())
		case <-time.After(lockPoll):
		}
	}
}
