package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/hallmark-dev/hallmark/internal/index"
)

func newIndexCmd() *cobra.Command {
	var dd dataDirOption
	cmd := &cobra.Command{
		Use:   "index",
		Short: "Manage the signature index (on the server's database)",
	}
	dd.bind(cmd.PersistentFlags())
	var project string
	rebuild := &cobra.Command{
		Use:   "rebuild",
		Short: "Judge every indexed signature again (of one project with --project), in the background",
		Long: `Queue every indexed signature manifest (of the repositories under --project PATH) to be
indexed again from the stored manifests and blobs, with every check and the trust policy that
governs each repository now: the same work, and the same result, as a fresh index. Running
replicas do the work in the background; it is idempotent. Progress: hallmark_index_jobs_pending
and hallmark_index_signatures_total in /metrics, and "index: progress" lines in the server log.
Running servers take the same request at POST /api/v1/index/rebuild.`,
		Example: `  hallmark index rebuild --data-dir ./hallmark-data
  hallmark index rebuild --project group/app --database-url postgres://...`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return dd.withIndex(cmd.Context(), func(ix *index.Indexer) error {
				gen, n, err := ix.Rebuild(cmd.Context(), project)
				if err != nil {
					return err
				}
				what := "every repository"
				if project != "" {
					what = "the repositories under " + project
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "queued %d signature manifests of %s (index generation %d); the running servers index them in the background\n", n, what, gen)
				return nil
			})
		},
	}
	rebuild.Flags().StringVar(&project, "project", "", "rebuild only the repositories under this project path")
	cmd.AddCommand(rebuild)
	return cmd
}
