package postgres_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/hallmark-dev/hallmark/internal/meta/metatest"
	"github.com/hallmark-dev/hallmark/internal/meta/postgres"
	"github.com/hallmark-dev/hallmark/internal/meta/sqlstore"
	"github.com/hallmark-dev/hallmark/internal/testenv"
)

// database is one PostgreSQL database.
type database struct{ url string }

func (d database) Open(ctx context.Context) (*sqlstore.Store, error) {
	return postgres.Open(ctx, postgres.Config{URL: d.url})
}

func (d database) Raw(t *testing.T) *sql.DB {
	db, err := postgres.OpenDB(postgres.Config{URL: d.url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func (d database) Dialect() *sqlstore.Dialect { return postgres.Dialect() }

func backend() metatest.Backend {
	return metatest.Backend{
		NewDB: func(t *testing.T) metatest.DB { return database{testenv.Postgres(t)} },
		FailTagInsert: `CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN IF NEW.name = 'boom' THEN RAISE EXCEPTION 'injected failure'; END IF; RETURN NEW; END $$;
			CREATE TRIGGER boom BEFORE INSERT ON tags FOR EACH ROW EXECUTE FUNCTION boom()`,
	}
}

// TestContract runs the store contract suite on PostgreSQL.
func TestContract(t *testing.T) { metatest.Run(t, backend()) }
