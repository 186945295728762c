package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/hallmark-dev/hallmark/internal/config"
	"github.com/hallmark-dev/hallmark/internal/gc"
	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/internal/server"
)

// gcOption is the storage and collection settings the garbage collection
// and retention commands share with the server (same flags, same
// HALLMARK_* variables).
type gcOption struct {
	dd       *dataDirOption
	blobURL  string
	grace    time.Duration
	untagged bool
}

// bind binds the collection flags (the data dir's are dd's, bound by the
// caller).
func (o *gcOption) bind(fs *pflag.FlagSet, dd *dataDirOption) {
	o.dd = dd
	def := config.Defaults()
	o.blobURL, _ = lookupEnv("HALLMARK_BLOB_URL")
	fs.StringVar(&o.blobURL, "blob-url", o.blobURL, "the server's S3 blob storage (s3://bucket/prefix?...), if it has one; env HALLMARK_BLOB_URL")
	o.grace = def.GCGrace
	if v, ok := lookupEnv("HALLMARK_GC_GRACE"); ok {
		if d, err := time.ParseDuration(v); err == nil {
			o.grace = d
		}
	}
	fs.DurationVar(&o.grace, "grace", o.grace, "the server's --gc-grace: how long something unreferenced stays; env HALLMARK_GC_GRACE")
	if v, ok := lookupEnv("HALLMARK_GC_UNTAGGED_MANIFESTS"); ok {
		o.untagged, _ = strconv.ParseBool(v)
	}
	fs.BoolVar(&o.untagged, "untagged-manifests", o.untagged, "the server's --gc-untagged-manifests: also collect untagged manifests; env HALLMARK_GC_UNTAGGED_MANIFESTS")
}

// database checks the flags and names the server's database.
func (o *gcOption) database() (server.Database, error) {
	if o.grace < time.Second {
		return server.Database{}, fmt.Errorf("--grace %v: use at least 1s", o.grace)
	}
	return o.dd.database()
}

// open opens the collector over the server's database and blob store.
func (o *gcOption) open(ctx context.Context, stderr io.Writer) (*gc.Collector, *server.GCStore, func() error, error) {
	db, err := o.database()
	if err != nil {
		return nil, nil, nil, err
	}
	return server.OpenGC(ctx, db, o.blobURL, gc.Config{Grace: o.grace, UntaggedManifests: o.untagged}, newLogger(stderr, "warn", "text"))
}

func newGCCmd() *cobra.Command {
	var dd dataDirOption
	var o gcOption
	var dryRun, orphans bool
	var output string
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Run one garbage collection sweep now (the server's worker runs them every --gc-interval)",
		Long: `Runs one garbage collection sweep on the server's database (SQLite in --data-dir, or
PostgreSQL at --database-url) and blob store (--data-dir, or S3 at --blob-url), as the server's
worker does every --gc-interval: it finishes blob deletions an interrupted sweep left, runs the
projects' retention policies that are due, deletes untagged manifests (with
--untagged-manifests), then the blobs no manifest has referenced for --grace. It is safe while
servers run: pushes and the sweep coordinate through the database.

--dry-run changes nothing and prints what the sweep would delete and free. --orphans first lists
the blob store for objects the database does not know (left by a crash before garbage collection
existed) and queues them for review (they go a grace period after their modification time).`,
		Example: `  hallmark gc --dry-run --data-dir /var/lib/hallmark
  hallmark gc --database-url postgres://hallmark@db/hallmark --blob-url 's3://bucket/registry?region=eu-west-1'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return fmt.Errorf("-o %q: use text or json", output)
			}
			db, err := o.database()
			if err != nil {
				return err
			}
			r, err := server.RunGC(cmd.Context(), server.GCOptions{Database: db, BlobURL: o.blobURL, Grace: o.grace,
				UntaggedManifests: o.untagged, DryRun: dryRun, Orphans: orphans}, newLogger(cmd.ErrOrStderr(), "warn", "text"))
			if r != nil {
				if output == "json" {
					printGCJSON(cmd.OutOrStdout(), r)
				} else {
					printGC(cmd.OutOrStdout(), r, orphans)
				}
			}
			return err
		},
	}
	dd.bind(cmd.Flags())
	o.bind(cmd.Flags(), &dd)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "change nothing; print what the sweep would delete and free")
	cmd.Flags().BoolVar(&orphans, "orphans", false, "first scan the blob store for objects the database does not know and queue them")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	return cmd
}

func printGC(w io.Writer, r *gc.Result, orphans bool) {
	verb := "deleted"
	if r.DryRun {
		verb = "would delete"
		fmt.Fprintln(w, "dry run: nothing was changed")
	}
	if orphans {
		what := "queued for review"
		if r.DryRun {
			what = "would be queued for review"
		}
		fmt.Fprintf(w, "orphan objects: %d %s\n", r.OrphansQueued, what)
	}
	if r.DeletionsFinished > 0 {
		fmt.Fprintf(w, "interrupted blob deletions: %d %s\n", r.DeletionsFinished, map[bool]string{true: "would be finished", false: "finished"}[r.DryRun])
	}
	fmt.Fprintf(w, "tags: %s %d (retention policies)\n", verb, r.TagsRemoved)
	for _, t := range r.Tags {
		fmt.Fprintf(w, "  %s:%s\t%s\tpushed %s\n", t.Repository, t.Tag, t.Digest, t.Updated.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(w, "manifests: %s %d\n", verb, r.ManifestsDeleted)
	for _, m := range r.Manifests {
		line := "  " + m.Repository + "@" + m.Digest.String()
		if m.Subject != "" {
			line += "\tsignature/attestation of " + m.Subject.String()
		}
		fmt.Fprintln(w, line)
	}
	fmt.Fprintf(w, "blobs: %s %d, freeing %d bytes\n", verb, r.BlobsDeleted, r.BytesFreed)
	for _, b := range r.Blobs {
		fmt.Fprintf(w, "  %s\t%d bytes\n", b.Digest, b.Size)
	}
	if n := r.BlobsDeleted - len(r.Blobs); n > 0 {
		fmt.Fprintf(w, "  ... and %d more\n", n)
	}
	fmt.Fprintf(w, "pending: %d blob reviews, %d manifest reviews, %d blob deletions\n", r.Pending.Blobs, r.Pending.Manifests, r.Pending.Deletions)
	for _, e := range r.Errors {
		fmt.Fprintln(w, "error:", e)
	}
}

func printGCJSON(w io.Writer, r *gc.Result) {
	type blobJSON struct {
		Digest string `json:"digest"`
		Size   int64  `json:"size"`
	}
	type manifestJSON struct {
		Repository string `json:"repository"`
		Digest     string `json:"digest"`
		Subject    string `json:"subject,omitempty"`
	}
	out := struct {
		DryRun            bool           `json:"dryRun"`
		BlobsDeleted      int            `json:"blobsDeleted"`
		BytesFreed        int64          `json:"bytesFreed"`
		ManifestsDeleted  int            `json:"manifestsDeleted"`
		TagsRemoved       int            `json:"tagsRemoved"`
		DeletionsFinished int            `json:"deletionsFinished"`
		OrphansQueued     int            `json:"orphansQueued"`
		Pending           meta.GCPending `json:"pending"`
		Blobs             []blobJSON     `json:"blobs"`
		Manifests         []manifestJSON `json:"manifests"`
		Tags              []gc.TagJSON   `json:"tags"`
		Errors            []string       `json:"errors,omitempty"`
	}{DryRun: r.DryRun, BlobsDeleted: r.BlobsDeleted, BytesFreed: r.BytesFreed, ManifestsDeleted: r.ManifestsDeleted,
		TagsRemoved: r.TagsRemoved, DeletionsFinished: r.DeletionsFinished, OrphansQueued: r.OrphansQueued, Pending: r.Pending,
		Blobs: []blobJSON{}, Manifests: []manifestJSON{}, Tags: []gc.TagJSON{}, Errors: r.Errors}
	for _, b := range r.Blobs {
		out.Blobs = append(out.Blobs, blobJSON{b.Digest.String(), b.Size})
	}
	for _, m := range r.Manifests {
		out.Manifests = append(out.Manifests, manifestJSON{m.Repository, m.Digest.String(), m.Subject.String()})
	}
	for _, t := range r.Tags {
		out.Tags = append(out.Tags, gc.TagJSON{Repository: t.Repository, Tag: t.Tag, Digest: t.Digest.String(), Updated: t.Updated.UTC()})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(out)
}

// newRetentionCmds returns `hallmark project set-retention` and
// `hallmark project retention` (dd: the project command's data dir flags).
func newRetentionCmds(dd *dataDirOption) []*cobra.Command {
	var o gcOption
	var keepN int
	var tagRegex, olderThan, protected string
	var apply, clear bool
	set := &cobra.Command{
		Use:   "set-retention PATH",
		Short: "Set the project's retention policy (dry run unless --apply)",
		Long: `Sets the retention policy of a project, as GitLab's cleanup policies: in each of its
repositories, of the tags --tag-regex matches (full match; default all), the --keep-n most
recently pushed stay, and the others are removed (with --older-than, only those last pushed
longer ago). Tags --protected-regex matches, tags of quarantined images and cosign's
signature/attestation tags (they go with their image) are never removed. The server's
garbage collection worker runs the policy hourly. Removing a tag leaves its manifest;
garbage collection deletes it, with its signatures, when untagged manifests are collected
(--gc-untagged-manifests).

Without --apply nothing is stored or removed: the command prints what the policy would remove
now. With --apply it stores the policy and applies it at once. --clear --apply removes the
policy. Maintainers may also manage it at PUT /api/v1/projects/<path>/retention.`,
		Example: `  hallmark project set-retention group/app --keep-n 10 --older-than 30d --protected-regex 'v[0-9]+\.[0-9]+\.[0-9]+'
  hallmark project set-retention group/app --keep-n 10 --older-than 30d --apply
  hallmark project set-retention group/app --clear --apply`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, project := cmd.Context(), args[0]
			c, store, closeFn, err := o.open(ctx, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer closeFn()
			out := cmd.OutOrStdout()
			if clear {
				if !apply {
					fmt.Fprintf(out, "dry run: would remove the retention policy of %s (--apply removes it)\n", project)
					_, err := store.Retention(ctx, project)
					return err
				}
				if err := store.DeleteRetention(ctx, project); err != nil {
					return err
				}
				fmt.Fprintf(out, "removed the retention policy of %s\n", project)
				return nil
			}
			var age time.Duration
			if olderThan != "" {
				if age, err = gc.ParseDuration(olderThan); err != nil {
					return fmt.Errorf("--older-than %w", err)
				}
			}
			p, err := gc.NewPolicy(keepN, tagRegex, age, protected)
			if err != nil {
				return err
			}
			if _, err := store.Retention(ctx, project); err != nil {
				return err
			}
			return runRetention(ctx, out, c, store, project, p, apply, true)
		},
	}
	o.bind(set.Flags(), dd)
	set.Flags().IntVar(&keepN, "keep-n", 0, "keep this many most recently pushed matching tags per repository")
	set.Flags().StringVar(&tagRegex, "tag-regex", "", "tags the policy applies to (regular expression, full match; default all)")
	set.Flags().StringVar(&olderThan, "older-than", "", "remove only tags last pushed longer ago than this (30d, 720h)")
	set.Flags().StringVar(&protected, "protected-regex", "", "tags never removed (regular expression, full match)")
	set.Flags().BoolVar(&apply, "apply", false, "store the policy and apply it now (default: only print what it would remove)")
	set.Flags().BoolVar(&clear, "clear", false, "remove the project's policy (with --apply)")

	var ro gcOption
	var rapply bool
	show := &cobra.Command{
		Use:   "retention PATH",
		Short: "Print the project's retention policy and what it would remove now (--apply removes it)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, project := cmd.Context(), args[0]
			c, store, closeFn, err := ro.open(ctx, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer closeFn()
			pr, err := store.Retention(ctx, project)
			if err != nil {
				return err
			}
			if pr.Policy == "" {
				return fmt.Errorf("project %s has no retention policy; set one with hallmark project set-retention", project)
			}
			p, err := gc.ParsePolicy([]byte(pr.Policy))
			if err != nil {
				return err
			}
			return runRetention(ctx, cmd.OutOrStdout(), c, store, project, p, rapply, false)
		},
	}
	ro.bind(show.Flags(), dd)
	show.Flags().BoolVar(&rapply, "apply", false, "remove the tags now (default: only print them)")
	return []*cobra.Command{set, show}
}

// runRetention prints policy p of project and what it removes now; with
// apply it removes them (and with store, first stores p).
func runRetention(ctx context.Context, w io.Writer, c *gc.Collector, store *server.GCStore, project string, p *gc.Policy, apply, save bool) error {
	fmt.Fprintf(w, "retention policy of %s: %s\n", project, p.JSON())
	if !apply {
		plan, err := c.PlanRetention(ctx, project, p)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "dry run: would remove %d tags (--apply removes them", len(plan))
		if save {
			fmt.Fprint(w, " and stores the policy")
		}
		fmt.Fprintln(w, ")")
		printTags(w, plan)
		return nil
	}
	if save {
		if err := store.SetRetention(ctx, project, p.JSON()); err != nil {
			return err
		}
		fmt.Fprintln(w, "stored; the server applies it hourly")
	}
	removed, err := c.ApplyRetention(ctx, project, p, "cli")
	fmt.Fprintf(w, "removed %d tags\n", len(removed))
	printTags(w, removed)
	return err
}

func printTags(w io.Writer, ts []meta.RetentionTag) {
	for _, t := range ts {
		fmt.Fprintf(w, "  %s:%s\t%s\tpushed %s\n", t.Repository, t.Tag, t.Digest, t.Updated.UTC().Format(time.RFC3339))
	}
}
