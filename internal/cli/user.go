package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/internal/config"
	"github.com/hallmark-dev/hallmark/internal/server"
)

// dataDirOption is the --data-dir (or --database-url) of the management
// commands, which work on the server's database directly (like `gitea
// admin`).
type dataDirOption struct{ dir, dbURL string }

func (o *dataDirOption) bind(fs *pflag.FlagSet) {
	def := config.Defaults().DataDir
	if v, ok := lookupEnv("HALLMARK_DATA_DIR"); ok && v != "" {
		def = v
	}
	fs.StringVar(&o.dir, "data-dir", def, "the server's data directory; env HALLMARK_DATA_DIR")
	dbURL, _ := lookupEnv("HALLMARK_DATABASE_URL")
	fs.StringVar(&o.dbURL, "database-url", dbURL, "the server's PostgreSQL database (postgres://...), if it has one; env HALLMARK_DATABASE_URL")
}

func (o *dataDirOption) database() (server.Database, error) {
	if err := config.ValidateDatabaseURL(o.dbURL); err != nil {
		return server.Database{}, err
	}
	return server.Database{DataDir: o.dir, URL: o.dbURL}, nil
}

// keyOptions locate a server's keys: its data dir or database, and the
// key encryption key that seals the keys kept in PostgreSQL.
type keyOptions struct {
	dataDirOption
	kekFile string
}

func (o *keyOptions) bind(fs *pflag.FlagSet) {
	o.dataDirOption.bind(fs)
	def, _ := lookupEnv("HALLMARK_KEY_ENCRYPTION_KEY_FILE")
	fs.StringVar(&o.kekFile, "key-encryption-key-file", def, "with --database-url: the replicas' key encryption key file (env HALLMARK_KEY_ENCRYPTION_KEY_FILE; or the key itself in HALLMARK_KEY_ENCRYPTION_KEY)")
}

func (o *keyOptions) database() (server.Database, error) {
	db, err := o.dataDirOption.database()
	if err != nil {
		return db, err
	}
	if db.URL != "" {
		db.KEK.File = o.kekFile
		if o.kekFile == "" {
			db.KEK.Value, _ = lookupEnv("HALLMARK_KEY_ENCRYPTION_KEY")
		}
	}
	return db, nil
}

// withAdmin opens the database and runs fn.
func (o *dataDirOption) withAdmin(ctx context.Context, fn func(*auth.Admin) error) error {
	db, err := o.database()
	if err != nil {
		return err
	}
	adm, closeFn, err := server.OpenAdmin(ctx, db)
	if err != nil {
		return err
	}
	defer closeFn()
	return fn(adm)
}

// readSecretLine reads one line (without the newline) from r.
func readSecretLine(r io.Reader) (string, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("no password on standard input")
	}
	return line, nil
}

// newPassword is the password of --password-stdin (fromStdin), else a
// generated one (generated: the caller prints it, once).
func newPassword(stdin io.Reader, fromStdin bool) (pw string, generated bool, err error) {
	if fromStdin {
		pw, err = readSecretLine(stdin)
		return pw, false, err
	}
	return auth.GeneratePassword(), true, nil
}

// parseLifetime accepts Go durations and whole days ("30d").
func parseLifetime(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("lifetime %q: use e.g. 30d, 12h or 90m", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("lifetime %q: use e.g. 30d, 12h or 90m", s)
	}
	return v, nil
}

func newUserCmd() *cobra.Command {
	var dd dataDirOption
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Manage registry users and their personal access tokens",
		Long: `Manage the registry's users (passwords hashed with argon2id) and personal access
tokens. These commands work on the server's database in --data-dir directly; the
server may be running.`,
	}
	dd.bind(cmd.PersistentFlags())

	var admin, pwStdin bool
	add := &cobra.Command{
		Use:   "add NAME",
		Short: "Create a user (password from --password-stdin, else generated and printed once)",
		Example: `  hallmark user add alice
  printf '%s\n' "$PASSWORD" | hallmark user add bob --password-stdin --admin`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pw, generated, err := newPassword(cmd.InOrStdin(), pwStdin)
			if err != nil {
				return err
			}
			return dd.withAdmin(cmd.Context(), func(a *auth.Admin) error {
				u, err := a.AddUser(cmd.Context(), args[0], pw, admin)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "created user %s (admin: %v)\n", u.Name, u.Admin)
				if generated {
					fmt.Fprintln(cmd.ErrOrStderr(), "generated password (shown once):")
					fmt.Fprintln(cmd.OutOrStdout(), pw)
				}
				return nil
			})
		},
	}
	add.Flags().BoolVar(&admin, "admin", false, "make the user an administrator (all repositories, the catalog and the admin API)")
	add.Flags().BoolVar(&pwStdin, "password-stdin", false, "read the password from standard input")

	var jsonOut bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List users",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return dd.withAdmin(cmd.Context(), func(a *auth.Admin) error {
				users, err := a.Store.ListUsers(cmd.Context())
				if err != nil {
					return err
				}
				if jsonOut {
					type u struct {
						Name    string    `json:"name"`
						Admin   bool      `json:"admin"`
						Created time.Time `json:"created"`
					}
					out := []u{}
					for _, x := range users {
						out = append(out, u{x.Name, x.Admin, x.Created.UTC()})
					}
					return json.NewEncoder(cmd.OutOrStdout()).Encode(out)
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tADMIN\tCREATED")
				for _, x := range users {
					fmt.Fprintf(tw, "%s\t%v\t%s\n", x.Name, x.Admin, x.Created.UTC().Format(time.RFC3339))
				}
				return tw.Flush()
			})
		},
	}
	list.Flags().BoolVar(&jsonOut, "json", false, "print JSON")

	remove := &cobra.Command{
		Use:     "remove NAME",
		Aliases: []string{"rm"},
		Short:   "Delete a user with their memberships and personal access tokens",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return dd.withAdmin(cmd.Context(), func(a *auth.Admin) error {
				if err := a.Store.DeleteUser(cmd.Context(), args[0]); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "deleted user %s\n", args[0])
				return nil
			})
		},
	}

	var passwdStdin bool
	passwd := &cobra.Command{
		Use:   "passwd NAME",
		Short: "Set a user's password (from --password-stdin, else generated and printed once)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pw, generated, err := newPassword(cmd.InOrStdin(), passwdStdin)
			if err != nil {
				return err
			}
			return dd.withAdmin(cmd.Context(), func(a *auth.Admin) error {
				if err := a.SetPassword(cmd.Context(), args[0], pw); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "password of %s changed; refresh tokens issued before now stop working\n", args[0])
				if generated {
					fmt.Fprintln(cmd.OutOrStdout(), pw)
				}
				return nil
			})
		},
	}
	passwd.Flags().BoolVar(&passwdStdin, "password-stdin", false, "read the password from standard input")

	var scopes []string
	var expires, patName string
	createPAT := &cobra.Command{
		Use:   "create-pat NAME",
		Short: "Create a personal access token for user NAME (printed once on stdout)",
		Long: `Create a personal access token. Scopes: pull, push (implies pull), delete. The token
acts as its user, limited to its scopes, until it expires or is revoked; use it as the
password with the user's name: docker login -u NAME -p TOKEN REGISTRY.`,
		Example: `  hallmark user create-pat alice --scope push --expires 30d --name ci`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ttl, err := parseLifetime(expires)
			if err != nil {
				return err
			}
			return dd.withAdmin(cmd.Context(), func(a *auth.Admin) error {
				secret, t, err := a.CreatePAT(cmd.Context(), args[0], patName, scopes, ttl)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "personal access token %d for %s, scopes %s, expires %s (shown once):\n",
					t.ID, t.User, strings.Join(t.Scopes, ","), t.Expires.UTC().Format(time.RFC3339))
				fmt.Fprintln(cmd.OutOrStdout(), secret)
				return nil
			})
		},
	}
	createPAT.Flags().StringSliceVar(&scopes, "scope", nil, "pull, push or delete (repeatable or comma-separated)")
	createPAT.Flags().StringVar(&expires, "expires", "30d", "lifetime, e.g. 30d or 12h (at most 366d)")
	createPAT.Flags().StringVar(&patName, "name", "", "a description, e.g. where the token is used")

	listPATs := &cobra.Command{
		Use:   "list-pats [NAME]",
		Short: "List personal access tokens (of one user, or all)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			user := ""
			if len(args) == 1 {
				user = args[0]
			}
			return dd.withAdmin(cmd.Context(), func(a *auth.Admin) error {
				ts, err := a.Store.ListPATs(cmd.Context(), user)
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tUSER\tNAME\tSCOPES\tEXPIRES\tREVOKED")
				for _, t := range ts {
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%v\n", t.ID, t.User, t.Name, strings.Join(t.Scopes, ","), t.Expires.UTC().Format(time.RFC3339), t.Revoked)
				}
				return tw.Flush()
			})
		},
	}

	revokePAT := &cobra.Command{
		Use:   "revoke-pat ID",
		Short: "Revoke a personal access token (access tokens already issued expire within minutes)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil {
				return fmt.Errorf("token id %q: use the number from list-pats", args[0])
			}
			return dd.withAdmin(cmd.Context(), func(a *auth.Admin) error {
				if err := a.Store.RevokePAT(cmd.Context(), id); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "revoked personal access token %d\n", id)
				return nil
			})
		},
	}

	cmd.AddCommand(add, list, remove, passwd, createPAT, listPATs, revokePAT)
	return cmd
}
