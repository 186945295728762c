package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/hallmark-dev/hallmark/internal/server"
)

func newMigrateCmd() *cobra.Command {
	var dd dataDirOption
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "List and apply pending metadata database schema migrations",
		Long: `Prints the schema migrations the metadata database (SQLite in --data-dir, or PostgreSQL
at --database-url) has not applied, then applies them, each in its own transaction. The server
applies pending migrations itself when it starts (under a lock, so several replicas may start at
once); run this beforehand to upgrade the schema as a separate deployment step. A database whose
schema is newer than this binary is refused.`,
		Example: `  hallmark migrate --dry-run --database-url postgres://hallmark@db.example/hallmark
  hallmark migrate --data-dir /var/lib/hallmark`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, err := dd.database()
			if err != nil {
				return err
			}
			ms, err := server.Migrate(cmd.Context(), db, dryRun)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			verb := "applied"
			if dryRun {
				verb = "pending"
			}
			if len(ms) == 0 {
				fmt.Fprintln(out, "schema is up to date")
				return nil
			}
			for _, m := range ms {
				fmt.Fprintf(out, "%s %d %s\n", verb, m.Version, m.Name)
			}
			return nil
		},
	}
	dd.bind(cmd.Flags())
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "only print the pending migrations")
	return cmd
}
