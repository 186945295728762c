package sqlstore

// migrations are applied in order, each in its own transaction, and
// recorded in schema_migrations(version, applied_at), the table and
// versions that SQLite databases of earlier releases already carry. Each
// entry is one SQL text that both dialects run: the {{...}} tokens are
// spelled per dialect (Dialect.Types), everything else sticks to what
// SQLite and PostgreSQL share (ON CONFLICT, RETURNING, BIGINT/TEXT
// columns). Add a table by appending an entry; never edit an applied one
// (on SQLite the tokens expand to exactly the text earlier releases ran).
var migrations = []Migration{
	{Version: 1, Name: "registry core", SQL: `CREATE TABLE repositories (
		id {{id}},
		name TEXT{{bytewise}} NOT NULL UNIQUE,
		created_at BIGINT NOT NULL
	);
	CREATE TABLE blobs (
		digest TEXT PRIMARY KEY,
		size BIGINT NOT NULL,
		created_at BIGINT NOT NULL
	);
	CREATE TABLE repository_blobs (
		repository_id BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
		digest TEXT NOT NULL REFERENCES blobs(digest),
		created_at BIGINT NOT NULL,
		PRIMARY KEY (repository_id, digest)
	);
	CREATE INDEX repository_blobs_digest ON repository_blobs(digest);
	CREATE TABLE manifests (
		id {{id}},
		repository_id BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
		digest TEXT NOT NULL,
		media_type TEXT NOT NULL,
		artifact_type TEXT NOT NULL DEFAULT '',
		size BIGINT NOT NULL,
		payload {{bytes}} NOT NULL,
		subject_digest TEXT NOT NULL DEFAULT '',
		annotations TEXT NOT NULL DEFAULT '',
		created_at BIGINT NOT NULL,
		UNIQUE (repository_id, digest)
	);
	CREATE INDEX manifests_subject ON manifests(repository_id, subject_digest);
	CREATE TABLE manifest_references (
		manifest_id BIGINT NOT NULL REFERENCES manifests(id) ON DELETE CASCADE,
		child_digest TEXT NOT NULL,
		kind TEXT NOT NULL,
		PRIMARY KEY (manifest_id, child_digest)
	);
	CREATE INDEX manifest_references_child ON manifest_references(child_digest);
	CREATE TABLE tags (
		repository_id BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
		name TEXT{{bytewise}} NOT NULL,
		manifest_id BIGINT NOT NULL REFERENCES manifests(id) ON DELETE CASCADE,
		updated_at BIGINT NOT NULL,
		PRIMARY KEY (repository_id, name)
	);
	CREATE INDEX tags_manifest ON tags(manifest_id);`},

	{Version: 2, Name: "signature index", SQL: `CREATE TABLE signatures (
			id {{id}},
			repository_id BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
			subject_digest TEXT NOT NULL,
			manifest_digest TEXT NOT NULL,
			layer_digest TEXT NOT NULL,
			sig_key TEXT NOT NULL,
			kind TEXT NOT NULL,
			payload_type TEXT NOT NULL DEFAULT '',
			signer TEXT NOT NULL DEFAULT '',
			cert_issuer TEXT NOT NULL DEFAULT '',
			log_index BIGINT,
			status TEXT NOT NULL,
			status_detail TEXT NOT NULL DEFAULT '',
			created_at BIGINT NOT NULL,
			UNIQUE (repository_id, sig_key)
		);
		CREATE INDEX signatures_subject ON signatures(repository_id, subject_digest);
		CREATE TABLE signature_annotations (
			signature_id BIGINT NOT NULL REFERENCES signatures(id) ON DELETE CASCADE,
			key TEXT NOT NULL,
			value TEXT NOT NULL,
			PRIMARY KEY (signature_id, key)
		);
		CREATE INDEX signature_annotations_kv ON signature_annotations(key, value);`},

	// users, projects, credentials, audit log (internal/auth).
	{Version: 3, Name: "users, projects, tokens, audit log", SQL: `CREATE TABLE users (
			id {{id}},
			name TEXT{{bytewise}} NOT NULL UNIQUE,
			password_hash TEXT NOT NULL,
			admin BIGINT NOT NULL DEFAULT 0,
			password_changed_at BIGINT NOT NULL,
			created_at BIGINT NOT NULL
		);
		CREATE TABLE projects (
			id {{id}},
			path TEXT{{bytewise}} NOT NULL UNIQUE,
			visibility TEXT NOT NULL,
			oidc_issuer TEXT NOT NULL DEFAULT '',
			created_at BIGINT NOT NULL
		);
		CREATE TABLE project_members (
			project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
			user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
			role TEXT NOT NULL,
			PRIMARY KEY (project_id, user_id)
		);
		CREATE INDEX project_members_user ON project_members(user_id);
		CREATE TABLE personal_access_tokens (
			id {{id}},
			user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
			name TEXT NOT NULL DEFAULT '',
			scopes TEXT NOT NULL,
			token_hash TEXT NOT NULL UNIQUE,
			expires_at BIGINT NOT NULL,
			revoked_at BIGINT,
			last_used_at BIGINT,
			created_at BIGINT NOT NULL
		);
		CREATE INDEX personal_access_tokens_user ON personal_access_tokens(user_id);
		CREATE TABLE ci_job_tokens (
			id {{id}},
			project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
			job_id TEXT NOT NULL,
			pipeline_id TEXT NOT NULL DEFAULT '',
			user_name TEXT NOT NULL DEFAULT '',
			token_hash TEXT NOT NULL UNIQUE,
			expires_at BIGINT NOT NULL,
			revoked_at BIGINT,
			created_at BIGINT NOT NULL
		);
		CREATE INDEX ci_job_tokens_expires ON ci_job_tokens(expires_at);
		CREATE TABLE audit_events (
			id {{id}},
			at BIGINT NOT NULL,
			action TEXT NOT NULL,
			actor TEXT NOT NULL DEFAULT '',
			actor_kind TEXT NOT NULL DEFAULT '',
			repository TEXT NOT NULL DEFAULT '',
			reference TEXT NOT NULL DEFAULT '',
			digest TEXT NOT NULL DEFAULT '',
			remote_addr TEXT NOT NULL DEFAULT '',
			detail TEXT NOT NULL DEFAULT ''
		);
		CREATE INDEX audit_events_at ON audit_events(at);
		CREATE INDEX audit_events_action ON audit_events(action, id);
		CREATE INDEX audit_events_repository ON audit_events(repository, id);
		CREATE INDEX audit_events_actor ON audit_events(actor, id);`},

	// transparency log (internal/tlog): the tree head (one row), entries by
	// index with their unique leaf hash, and every completed Merkle node
	// keyed by its post-order position, so appends write at the end of the
	// key space and a proof is a handful of primary-key reads.
	{Version: 4, Name: "transparency log", SQL: `CREATE TABLE tlog_tree (
			id {{intkey}},
			tree_id BIGINT NOT NULL,
			size BIGINT NOT NULL,
			root_hash {{bytes}} NOT NULL,
			compact_range {{bytes}} NOT NULL,
			checkpoint {{bytes}} NOT NULL,
			created_at BIGINT NOT NULL,
			updated_at BIGINT NOT NULL
		);
		CREATE TABLE tlog_entries (
			idx {{intkey}},
			leaf_hash {{bytes}} NOT NULL UNIQUE,
			body {{bytes}} NOT NULL,
			integrated_time BIGINT NOT NULL
		);
		CREATE TABLE tlog_nodes (
			id {{intkey}},
			hash {{bytes}} NOT NULL
		);`},

	// signature index: the Fulcio certificate extensions of keyless
	// signatures (key = dotted OID), searchable by value, kept apart from
	// the signed annotations so a signer cannot pose as its certificate.
	{Version: 5, Name: "certificate extensions of signatures", SQL: `CREATE TABLE signature_cert_extensions (
			signature_id BIGINT NOT NULL REFERENCES signatures(id) ON DELETE CASCADE,
			oid TEXT NOT NULL,
			value TEXT NOT NULL,
			PRIMARY KEY (signature_id, oid)
		);
		CREATE INDEX signature_cert_extensions_kv ON signature_cert_extensions(oid, value);
		CREATE INDEX signatures_signer ON signatures(signer);`},

	// replicas sharing PostgreSQL (internal/server with --database-url):
	// the key store (items sealed by internal/keystore; never plain keys),
	// the TUF repository's files, and the failed-login budgets and known
	// logins that internal/auth keeps where every replica sees them.
	{Version: 6, Name: "shared keys, TUF repository, login budgets", SQL: `CREATE TABLE key_store (
			name TEXT PRIMARY KEY,
			data {{bytes}} NOT NULL,
			created_at BIGINT NOT NULL
		);
		CREATE TABLE tuf_files (
			name TEXT PRIMARY KEY,
			data {{bytes}} NOT NULL,
			updated_at BIGINT NOT NULL
		);
		CREATE TABLE login_budgets (
			key TEXT PRIMARY KEY,
			tokens DOUBLE PRECISION NOT NULL,
			at BIGINT NOT NULL,
			full_at BIGINT NOT NULL
		);
		CREATE INDEX login_budgets_full ON login_budgets(full_at);
		CREATE TABLE known_logins (
			key TEXT PRIMARY KEY,
			at BIGINT NOT NULL
		);
		CREATE INDEX known_logins_at ON known_logins(at);`},
}
