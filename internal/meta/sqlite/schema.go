package sqlite

// migrations are applied in order and recorded in schema_migrations. The SQL
// sticks to what SQLite and PostgreSQL share (ON CONFLICT, RETURNING,
// BIGINT/TEXT columns) so the PostgreSQL driver can reuse the statements;
// only the key column type differs and is spelled per dialect.
var migrations = []string{
	// 1: registry core.
	`CREATE TABLE repositories (
		id INTEGER PRIMARY KEY,
		name TEXT NOT NULL UNIQUE,
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
		id INTEGER PRIMARY KEY,
		repository_id BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
		digest TEXT NOT NULL,
		media_type TEXT NOT NULL,
		artifact_type TEXT NOT NULL DEFAULT '',
		size BIGINT NOT NULL,
		payload BLOB NOT NULL,
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
		name TEXT NOT NULL,
		manifest_id BIGINT NOT NULL REFERENCES manifests(id) ON DELETE CASCADE,
		updated_at BIGINT NOT NULL,
		PRIMARY KEY (repository_id, name)
	);
	CREATE INDEX tags_manifest ON tags(manifest_id);`,
	// 2: signature index.
	`CREATE TABLE signatures (
			id INTEGER PRIMARY KEY,
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
		CREATE INDEX signature_annotations_kv ON signature_annotations(key, value);`,
	// auth: users, projects, credentials, audit log (internal/auth).
	`CREATE TABLE users (
			id INTEGER PRIMARY KEY,
			name TEXT NOT NULL UNIQUE,
			password_hash TEXT NOT NULL,
			admin BIGINT NOT NULL DEFAULT 0,
			password_changed_at BIGINT NOT NULL,
			created_at BIGINT NOT NULL
		);
		CREATE TABLE projects (
			id INTEGER PRIMARY KEY,
			path TEXT NOT NULL UNIQUE,
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
			id INTEGER PRIMARY KEY,
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
			id INTEGER PRIMARY KEY,
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
			id INTEGER PRIMARY KEY,
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
		CREATE INDEX audit_events_actor ON audit_events(actor, id);`,
	// transparency log (internal/tlog): the tree head (one row), entries by
	// index with their unique leaf hash, and every completed Merkle node
	// keyed by its post-order position, so appends write at the end of the
	// key space and a proof is a handful of primary-key reads.
	`CREATE TABLE tlog_tree (
			id INTEGER PRIMARY KEY,
			tree_id BIGINT NOT NULL,
			size BIGINT NOT NULL,
			root_hash BLOB NOT NULL,
			compact_range BLOB NOT NULL,
			checkpoint BLOB NOT NULL,
			created_at BIGINT NOT NULL,
			updated_at BIGINT NOT NULL
		);
		CREATE TABLE tlog_entries (
			idx INTEGER PRIMARY KEY,
			leaf_hash BLOB NOT NULL UNIQUE,
			body BLOB NOT NULL,
			integrated_time BIGINT NOT NULL
		);
		CREATE TABLE tlog_nodes (
			id INTEGER PRIMARY KEY,
			hash BLOB NOT NULL
		);`,
	// signature index: the Fulcio certificate extensions of keyless
	// signatures (key = dotted OID), searchable by value, kept apart from
	// the signed annotations so a signer cannot pose as its certificate.
	`CREATE TABLE signature_cert_extensions (
			signature_id BIGINT NOT NULL REFERENCES signatures(id) ON DELETE CASCADE,
			oid TEXT NOT NULL,
			value TEXT NOT NULL,
			PRIMARY KEY (signature_id, oid)
		);
		CREATE INDEX signature_cert_extensions_kv ON signature_cert_extensions(oid, value);
		CREATE INDEX signatures_signer ON signatures(signer);`,
}
