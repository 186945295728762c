package backup_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/backup"
	"github.com/hallmark-dev/hallmark/internal/blob"
)

var ctx = context.Background()

// files is a Source over plain files: the "database" is a file copied as
// is, the blobs a map. It makes archives for the restore tests (the real
// source, the server's, is tested through hallmark backup).
type files struct {
	db      []byte
	blobs   map[digest.Digest][]byte
	gone    []digest.Digest // rows whose objects are missing
	forgot  []digest.Digest
	corrupt digest.Digest
}

func (f *files) Snapshot(_ context.Context, path string) error {
	return os.WriteFile(path, f.db, 0o600)
}

func (f *files) SnapshotBlobs(_ context.Context, _ string, fn func(digest.Digest, int64) error) error {
	for _, d := range slices.Sorted(func(yield func(digest.Digest) bool) {
		for d := range f.blobs {
			if !yield(d) {
				return
			}
		}
	}) {
		if err := fn(d, int64(len(f.blobs[d]))); err != nil {
			return err
		}
	}
	for _, d := range f.gone {
		if err := fn(d, 1); err != nil {
			return err
		}
	}
	return nil
}

func (f *files) Forget(_ context.Context, _ string, ds []digest.Digest) error {
	f.forgot = append(f.forgot, ds...)
	return nil
}

type rsc struct{ *bytes.Reader }

func (rsc) Close() error { return nil }

func (f *files) Open(_ context.Context, d digest.Digest) (io.ReadSeekCloser, int64, error) {
	b, ok := f.blobs[d]
	if !ok {
		return nil, 0, blob.ErrNotFound
	}
	if d == f.corrupt {
		b = append([]byte("X"), b[1:]...)
	}
	return rsc{bytes.NewReader(b)}, int64(len(b)), nil
}

func dataDir(t testing.TB) string {
	dir := t.TempDir()
	for p, data := range map[string]string{
		"keys/rekor.pem": "log key", "keys/ca.pem": "ca key", "admin-password": "pw",
		"trust/trusted_root.json": "{}", "tuf/1.root.json": "{}",
		"hallmark.db": "live database: not copied", "hallmark.db-wal": "wal: not copied",
		"blobs/blobs/sha256/aa/aaaa": "live blob: copied from the source only", "keys/.tmp-rekor.pem-1": "temporary",
	} {
		p = filepath.Join(dir, p)
		os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func source() *files {
	f := &files{db: []byte("SQLite format 3\x00 snapshot"), blobs: map[digest.Digest][]byte{}}
	for _, s := range []string{"one", "two", strings.Repeat("three", 1000)} {
		f.blobs[digest.FromString(s)] = []byte(s)
	}
	d512 := digest.SHA512.FromString("sha512 blob")
	f.blobs[d512] = []byte("sha512 blob")
	return f
}

func archive(t testing.TB, src *files, dir string, compress bool) []byte {
	var buf bytes.Buffer
	if _, err := backup.Write(ctx, &buf, src, dir, compress); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRoundTrip(t *testing.T) {
	src := source()
	src.gone = []digest.Digest{digest.FromString("collected after the snapshot")}
	dir := dataDir(t)
	for _, compress := range []bool{false, true} {
		var buf bytes.Buffer
		st, err := backup.Write(ctx, &buf, src, dir, compress)
		if err != nil {
			t.Fatal(err)
		}
		if st.Blobs != 4 || st.Forgotten != 1 || st.Files != 6 || !slices.Equal(src.forgot, src.gone) {
			t.Errorf("stats %+v, forgot %v", st, src.forgot)
		}
		src.forgot = nil
		target := filepath.Join(t.TempDir(), "restored")
		res, err := backup.Restore(ctx, bytes.NewReader(buf.Bytes()), target, backup.RestoreOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if res.Blobs != 4 || res.Files != 6 {
			t.Errorf("restored %+v", res)
		}
		for p, want := range map[string]string{"keys/rekor.pem": "log key", "admin-password": "pw", "tuf/1.root.json": "{}", "hallmark.db": string(src.db)} {
			got, err := os.ReadFile(filepath.Join(target, p))
			if err != nil || string(got) != want {
				t.Errorf("%s: %q, %v", p, got, err)
			}
			fi, _ := os.Stat(filepath.Join(target, p))
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("%s has mode %v", p, fi.Mode())
			}
		}
		for d, want := range src.blobs {
			got, err := os.ReadFile(filepath.Join(target, "blobs", "blobs", string(d.Algorithm()), d.Encoded()[:2], d.Encoded()))
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("blob %s: %v", d, err)
			}
		}
		for _, p := range []string{"hallmark.db-wal", "blobs/blobs/sha256/aa/aaaa", "keys/.tmp-rekor.pem-1"} {
			if _, err := os.Stat(filepath.Join(target, p)); err == nil {
				t.Errorf("%s was backed up", p)
			}
		}
		if fi, _ := os.Stat(target); fi.Mode().Perm() != 0o700 {
			t.Errorf("data dir mode %v", fi.Mode())
		}
		// Not into a dir with files, unless forced (the old ones move aside).
		if _, err := backup.Restore(ctx, bytes.NewReader(buf.Bytes()), target, backup.RestoreOptions{}); !errors.Is(err, backup.ErrNotEmpty) {
			t.Errorf("restore into a full dir: %v", err)
		}
		os.WriteFile(filepath.Join(target, "marker"), []byte("old"), 0o600)
		res, err = backup.Restore(ctx, bytes.NewReader(buf.Bytes()), target, backup.RestoreOptions{Force: true})
		if err != nil || res.Replaced == "" {
			t.Fatalf("forced restore: %+v, %v", res, err)
		}
		if b, err := os.ReadFile(filepath.Join(res.Replaced, "marker")); err != nil || string(b) != "old" {
			t.Errorf("the old contents were not kept aside: %v", err)
		}
		if _, err := os.Stat(filepath.Join(target, "marker")); err == nil {
			t.Error("the old contents are mixed into the restored dir")
		}
	}
}

// A damaged blob in the store fails the backup.
func TestBackupRefusesDamagedBlob(t *testing.T) {
	src := source()
	src.corrupt = digest.FromString("two")
	var buf bytes.Buffer
	if _, err := backup.Write(ctx, &buf, src, dataDir(t), false); err == nil || !strings.Contains(err.Error(), "does not match its digest") {
		t.Fatalf("backup of a damaged store: %v", err)
	}
}

// entries reads an archive's entries.
func entries(t testing.TB, raw []byte) []entry {
	tr := tar.NewReader(bytes.NewReader(raw))
	var out []entry
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		out = append(out, entry{h: *h, body: b})
	}
}

type entry struct {
	h    tar.Header
	body []byte
}

func pack(es []entry) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		h := e.h
		h.Size = int64(len(e.body))
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		tw.WriteHeader(&h)
		tw.Write(e.body)
	}
	tw.Close()
	return buf.Bytes()
}

func TestRestoreRefusesDamagedArchives(t *testing.T) {
	good := archive(t, source(), dataDir(t), false)
	es := entries(t, good)
	find := func(es []entry, prefix string) int {
		return slices.IndexFunc(es, func(e entry) bool { return strings.HasPrefix(e.h.Name, prefix) })
	}
	edit := func(fn func(es []entry) []entry) []byte {
		c := make([]entry, len(es))
		for i, e := range es {
			c[i] = entry{h: e.h, body: slices.Clone(e.body)}
		}
		return pack(fn(c))
	}
	for _, tc := range []struct {
		name string
		raw  []byte
	}{
		{"empty", nil},
		{"not a tar", []byte("hello")},
		{"cut short", good[:len(good)/2]},
		{"gzip of junk", []byte{0x1f, 0x8b, 0, 0, 0}},
		{"no manifest", edit(func(es []entry) []entry { return es[:len(es)-1] })},
		{"no header", edit(func(es []entry) []entry { return es[1:] })},
		{"blob altered", edit(func(es []entry) []entry { es[find(es, "blobs/")].body[0] ^= 1; return es })},
		{"key altered", edit(func(es []entry) []entry { es[find(es, "keys/")].body[0] ^= 1; return es })},
		{"database altered", edit(func(es []entry) []entry { es[find(es, "hallmark.db")].body[0] ^= 1; return es })},
		{"file dropped", edit(func(es []entry) []entry { return slices.Delete(es, find(es, "keys/"), find(es, "keys/")+1) })},
		{"blob dropped", edit(func(es []entry) []entry { return slices.Delete(es, find(es, "blobs/"), find(es, "blobs/")+1) })},
		{"file added", edit(func(es []entry) []entry {
			return slices.Insert(es, len(es)-1, entry{h: tar.Header{Name: "keys/extra.pem", Mode: 0o600, Typeflag: tar.TypeReg}, body: []byte("x")})
		})},
		{"duplicate", edit(func(es []entry) []entry { i := find(es, "keys/"); return slices.Insert(es, i, es[i]) })},
		{"after the manifest", edit(func(es []entry) []entry { return append(es, es[find(es, "keys/")]) })},
		{"path traversal", edit(func(es []entry) []entry { es[find(es, "keys/")].h.Name = "../../etc/passwd"; return es })},
		{"absolute path", edit(func(es []entry) []entry { es[find(es, "keys/")].h.Name = "/etc/passwd"; return es })},
		{"hidden file", edit(func(es []entry) []entry { es[find(es, "keys/")].h.Name = "keys/.x"; return es })},
		{"symlink", edit(func(es []entry) []entry {
			return slices.Insert(es, 1, entry{h: tar.Header{Name: "keys/link", Linkname: "/etc/shadow", Typeflag: tar.TypeSymlink}})
		})},
		{"hard link", edit(func(es []entry) []entry {
			return slices.Insert(es, 1, entry{h: tar.Header{Name: "keys/link", Linkname: "admin-password", Typeflag: tar.TypeLink}})
		})},
		{"directory entry", edit(func(es []entry) []entry {
			return slices.Insert(es, 1, entry{h: tar.Header{Name: "keys", Typeflag: tar.TypeDir, Mode: 0o777}})
		})},
		{"blob misplaced", edit(func(es []entry) []entry {
			i := find(es, "blobs/")
			es[i].h.Name = strings.Replace(es[i].h.Name, "/sha256/", "/sha512/", 1)
			return es
		})},
		{"other format", edit(func(es []entry) []entry { es[0].body = []byte(`{"format":2}`); return es })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := filepath.Join(t.TempDir(), "restored")
			_, err := backup.Restore(ctx, bytes.NewReader(tc.raw), target, backup.RestoreOptions{})
			if err == nil {
				t.Fatal("restored")
			}
			if _, serr := os.Stat(target); serr == nil {
				t.Errorf("a refused archive left %s behind", target)
			}
			if matches, _ := filepath.Glob(filepath.Join(filepath.Dir(target), ".restored.restore-*")); len(matches) > 0 {
				t.Errorf("left %v behind", matches)
			}
			if strings.Contains(tc.name, "path") || tc.name == "symlink" {
				if _, serr := os.Stat(filepath.Join(filepath.Dir(target), "etc")); serr == nil {
					t.Error("wrote outside the target")
				}
			}
		})
	}
	// The unmodified archive restores.
	if _, err := backup.Restore(ctx, bytes.NewReader(pack(es)), filepath.Join(t.TempDir(), "ok"), backup.RestoreOptions{}); err != nil {
		t.Fatalf("repacked good archive: %v", err)
	}
}

func FuzzRestore(f *testing.F) {
	dir := dataDir(f)
	f.Add(archive(f, source(), dir, false))
	f.Add(archive(f, source(), dir, true))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, raw []byte) {
		target := filepath.Join(t.TempDir(), "d")
		res, err := backup.Restore(ctx, bytes.NewReader(raw), target, backup.RestoreOptions{})
		if err != nil {
			if _, serr := os.Stat(target); serr == nil {
				t.Fatalf("refused (%v) but created the target", err)
			}
			return
		}
		// Whatever restores has its database and only valid paths.
		if _, err := os.Stat(filepath.Join(target, backup.DatabaseFile)); err != nil || res.Files == 0 {
			t.Fatalf("restored without a database: %+v", res)
		}
		filepath.WalkDir(target, func(p string, e os.DirEntry, err error) error {
			if err == nil && !e.IsDir() && !e.Type().IsRegular() {
				t.Fatalf("restored a non-regular file %s", p)
			}
			return nil
		})
	})
}

func TestValidPath(t *testing.T) {
	for p, ok := range map[string]bool{
		"hallmark.db": true, "keys/rekor.pem": true, "tuf/1.root.json": true, "blobs/blobs/sha256/ab/ab": true,
		"": false, ".": false, "..": false, "../x": false, "a/../b": false, "/abs": false, "a//b": false, "a/": false,
		".hidden": false, "a/.hidden": false, "a b": false, "ä": false, "a\\b": false, strings.Repeat("a/", 17) + "a": false,
		strings.Repeat("a", 513): false,
	} {
		if got := backup.ValidPath(p); got != ok {
			t.Errorf("ValidPath(%q) = %v", p, got)
		}
	}
}
