package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hallmark-dev/hallmark/internal/backup"
	"github.com/hallmark-dev/hallmark/internal/config"
	"github.com/hallmark-dev/hallmark/internal/server"
)

func newBackupCmd() *cobra.Command {
	var dd dataDirOption
	var out, blobURL string
	var compress bool
	cmd := &cobra.Command{
		Use:   "backup --out FILE",
		Short: "Back up the embedded deployment (database, blobs, keys) while the server runs",
		Long: `Writes one archive (tar; gzip with --gzip or a .gz/.tgz name) of the server's data dir while
the server runs: a consistent snapshot of the SQLite database (VACUUM INTO), then the blobs that
snapshot names, each checked against its digest while copied (garbage collection's grace
period, --gc-grace, keeps them for that long: it must be longer than the backup takes), and
the keys, trust and TUF files and the admin password. Everything acknowledged before the
backup started is in it. The archive holds the keys: keep it as secret as the data dir (it is
written 0600). Restore it with hallmark restore.

A PostgreSQL + S3 deployment is backed up with those engines' own tools: see the README.`,
		Example: `  hallmark backup --data-dir /var/lib/hallmark --out /backup/hallmark-$(date +%F).tar.gz`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return fmt.Errorf("--out FILE is required")
			}
			if dd.dbURL != "" {
				return fmt.Errorf("hallmark backup backs up the embedded SQLite database; back up PostgreSQL with pg_dump or its point-in-time recovery (see the README)")
			}
			compress = compress || strings.HasSuffix(out, ".gz") || strings.HasSuffix(out, ".tgz")
			f, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp-")
			if err != nil {
				return err
			}
			tmp := f.Name()
			defer os.Remove(tmp) // gone after the rename
			st, err := server.Backup(cmd.Context(), dd.dir, blobURL, f, compress, newLogger(cmd.ErrOrStderr(), "warn", "text"))
			if err == nil {
				err = f.Sync()
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("backup failed; nothing was written to %s: %w", out, err)
			}
			if err := os.Rename(tmp, out); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "backed up %s to %s: database snapshot at %s, %d blobs (%d bytes), %d other files",
				dd.dir, out, st.Snapshot.Format("2006-01-02T15:04:05Z"), st.Blobs, st.BlobBytes, st.Files)
			if st.Forgotten > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "; %d unreferenced blobs were garbage collected during the backup and left out", st.Forgotten)
			}
			fmt.Fprintln(cmd.ErrOrStderr())
			return nil
		},
	}
	dd.bind(cmd.Flags())
	blobURL, _ = lookupEnv("HALLMARK_BLOB_URL")
	cmd.Flags().StringVar(&blobURL, "blob-url", blobURL, "the server's S3 blob storage, if it keeps blobs there (restore writes them to the data dir); env HALLMARK_BLOB_URL")
	cmd.Flags().StringVar(&out, "out", "", "archive to write (replaced only once complete)")
	cmd.Flags().BoolVar(&compress, "gzip", false, "gzip the archive (default for .gz and .tgz names)")
	return cmd
}

func newRestoreCmd() *cobra.Command {
	var in, dir string
	var force bool
	cmd := &cobra.Command{
		Use:   "restore --in FILE --data-dir DIR",
		Short: "Restore a backup into a data dir",
		Long: `Restores an archive written by hallmark backup into --data-dir, which must be empty or absent
unless --force (its old contents are then moved aside to DIR.replaced-<time>, not deleted).
Every blob is checked against its digest and every other file against the archive's
manifest before the data dir is touched; files get owner-only modes (0600 for the database and
keys). Start the server on the restored dir with the same --external-url.`,
		Example: `  hallmark restore --in /backup/hallmark-2025-01-31.tar.gz --data-dir /var/lib/hallmark`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if in == "" {
				return fmt.Errorf("--in FILE is required")
			}
			f, err := os.Open(in)
			if err != nil {
				return err
			}
			defer f.Close()
			res, err := server.Restore(cmd.Context(), f, dir, backup.RestoreOptions{Force: force})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "restored %s into %s: %d blobs, %d other files\n", in, dir, res.Blobs, res.Files)
			if res.Replaced != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "the old contents of %s are in %s\n", dir, res.Replaced)
			}
			return nil
		},
	}
	def := config.Defaults().DataDir
	if v, ok := lookupEnv("HALLMARK_DATA_DIR"); ok && v != "" {
		def = v
	}
	cmd.Flags().StringVar(&in, "in", "", "archive to restore")
	cmd.Flags().StringVar(&dir, "data-dir", def, "data dir to restore into; env HALLMARK_DATA_DIR")
	cmd.Flags().BoolVar(&force, "force", false, "restore into a data dir that has files (they are moved aside)")
	return cmd
}
