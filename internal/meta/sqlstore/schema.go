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

	// signature index: trust policies per project (a versioned JSON
	// document internal/index applies), the durable queue of indexing work
	// (one row per signature manifest and subject to index or re-evaluate; PutManifest
	// adds one in the manifest's transaction), and the index generation:
	// a policy change or rebuild starts a new one, and a signature records
	// the generation its status was decided in.
	{Version: 6, Name: "trust policies and the index queue", SQL: `CREATE TABLE trust_policies (
			project_id BIGINT PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE,
			version BIGINT NOT NULL,
			document TEXT NOT NULL,
			updated_at BIGINT NOT NULL,
			updated_by TEXT NOT NULL DEFAULT ''
		);
		CREATE TABLE index_jobs (
			id {{id}},
			repository TEXT NOT NULL,
			manifest_digest TEXT NOT NULL,
			subject_digest TEXT NOT NULL,
			generation BIGINT NOT NULL DEFAULT 0,
			seq BIGINT NOT NULL DEFAULT 0,
			claimed_by TEXT NOT NULL DEFAULT '',
			claimed_at BIGINT NOT NULL DEFAULT 0,
			created_at BIGINT NOT NULL,
			UNIQUE (repository, manifest_digest, subject_digest)
		);
		CREATE INDEX index_jobs_claim ON index_jobs(claimed_at, id);
		CREATE INDEX index_jobs_subject ON index_jobs(repository, subject_digest);
		CREATE TABLE index_state (
			id {{intkey}},
			generation BIGINT NOT NULL
		);
		INSERT INTO index_state(id, generation) VALUES (1, 0);
		ALTER TABLE signatures ADD COLUMN generation BIGINT NOT NULL DEFAULT 0;
		CREATE INDEX signatures_manifest ON signatures(repository_id, manifest_digest);`},

	// pull policy (internal/policy sets it, internal/registry enforces it):
	// quarantined manifests with their history (a lift sets lifted_at; the
	// row stays), at most one active quarantine per repository and digest,
	// which the manifest lookup probes (the only index on the table, so that
	// the planners of both databases pick it for that probe: a history
	// listing may scan); and each project's require-signature
	// setting, indexed so that the lookup finds the few projects that ask
	// for signatures without reading the others.
	{Version: 7, Name: "quarantine and require-signature", SQL: `CREATE TABLE quarantine (
			id {{id}},
			repository TEXT{{bytewise}} NOT NULL,
			digest TEXT NOT NULL,
			reason TEXT NOT NULL,
			actor TEXT NOT NULL DEFAULT '',
			created_at BIGINT NOT NULL,
			lifted_at BIGINT,
			lifted_by TEXT NOT NULL DEFAULT '',
			lift_reason TEXT NOT NULL DEFAULT ''
		);
		CREATE UNIQUE INDEX quarantine_active ON quarantine(repository, digest) WHERE lifted_at IS NULL;
		ALTER TABLE projects ADD COLUMN require_signature TEXT NOT NULL DEFAULT 'off';
		CREATE INDEX projects_require_signature ON projects(require_signature);`},

	// incident search (issue 11): the project of each repository (kept by
	// the store as repositories and projects come and go, so a search
	// filters by access in SQL), the certificates the CA issued with the
	// verified token claims the certificate cannot carry, the certificate
	// of each keyless signature, and the searchable facts of each
	// signature (meta.Facts) with the time it was recorded, so a search is
	// one index range read newest first. Annotations get that time too.
	{Version: 8, Name: "incident search: projects of repositories, CA claims, signature facts", SQL: incidentSearchSQL(""),
		ByDialect: map[string]string{"sqlite": incidentSearchSQL(" WITHOUT ROWID")}, backfill: backfillFacts},

	// web console (internal/web, internal/auth): sessions (only the hash
	// of a session id is stored; a user's deletion or a PAT's ends them),
	// and the indexes the console's bounded pages read through: newest
	// manifests (recent pushes), signatures by log index (which image a log
	// entry signs) and by id within an image (keyset pages).
	{Version: 9, Name: "console sessions", SQL: `CREATE TABLE sessions (
			id_hash TEXT PRIMARY KEY,
			user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
			pat_id BIGINT REFERENCES personal_access_tokens(id) ON DELETE CASCADE,
			csrf_secret TEXT NOT NULL,
			created_at BIGINT NOT NULL,
			last_seen_at BIGINT NOT NULL,
			expires_at BIGINT NOT NULL
		);
		CREATE INDEX sessions_user ON sessions(user_id);
		CREATE INDEX sessions_expires ON sessions(expires_at);
		CREATE INDEX sessions_last_seen ON sessions(last_seen_at);
		CREATE INDEX manifests_created ON manifests(created_at);
		CREATE INDEX signatures_log_index ON signatures(log_index);
		CREATE INDEX signatures_subject_id ON signatures(repository_id, subject_digest, id);`},

	// garbage collection (internal/gc): review queues as in GitLab's
	// online GC (a task per blob digest and per untagged manifest, due a
	// grace period after the event that queued it), the tombstones of blob
	// objects being deleted (pushes of those digests wait), per-project
	// retention policies, and signatures kept as history once their image
	// is deleted. Existing blobs and untagged manifests are queued once.
	{Version: 10, Name: "garbage collection and retention", SQL: `CREATE TABLE gc_blob_review_queue (
			digest TEXT PRIMARY KEY,
			queued_at BIGINT NOT NULL,
			event TEXT NOT NULL
		);
		CREATE INDEX gc_blob_review_queue_queued ON gc_blob_review_queue(queued_at, digest);
		CREATE TABLE gc_blob_deletions (
			digest TEXT PRIMARY KEY,
			size BIGINT NOT NULL,
			started_at BIGINT NOT NULL
		);
		CREATE TABLE gc_manifest_review_queue (
			manifest_id BIGINT PRIMARY KEY REFERENCES manifests(id) ON DELETE CASCADE,
			queued_at BIGINT NOT NULL,
			event TEXT NOT NULL
		);
		CREATE INDEX gc_manifest_review_queue_queued ON gc_manifest_review_queue(queued_at, manifest_id);
		CREATE TABLE project_retention (
			project_id BIGINT PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE,
			policy TEXT NOT NULL,
			updated_at BIGINT NOT NULL,
			last_run_at BIGINT NOT NULL DEFAULT 0
		);
		ALTER TABLE signatures ADD COLUMN deleted_at BIGINT;
		INSERT INTO gc_blob_review_queue(digest, queued_at, event) SELECT digest, created_at, 'migration' FROM blobs;
		INSERT INTO gc_manifest_review_queue(manifest_id, queued_at, event)
			SELECT m.id, m.created_at, 'migration' FROM manifests m WHERE NOT EXISTS (SELECT 1 FROM tags t WHERE t.manifest_id = m.id);`},

	// replicas sharing PostgreSQL (internal/server with --database-url):
	// the key store (items sealed by internal/keystore; never plain keys),
	// the TUF repository's files, and the failed-login budgets and known
	// logins that internal/auth keeps where every replica sees them.
	{Version: 11, Name: "shared keys, TUF repository, login budgets", SQL: `CREATE TABLE key_store (
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

// incidentSearchSQL is migration 8; noRowid is SQLite's WITHOUT ROWID for
// the facts table, which is then its own index.
func incidentSearchSQL(noRowid string) string {
	return `ALTER TABLE repositories ADD COLUMN project_id BIGINT;
		UPDATE repositories SET project_id = (SELECT p.id FROM projects p
			WHERE p.path = repositories.name OR substr(repositories.name, 1, length(p.path) + 1) = p.path || '/'
			ORDER BY length(p.path) DESC LIMIT 1);
		CREATE INDEX repositories_project ON repositories(project_id);
		ALTER TABLE signatures ADD COLUMN cert_sha256 TEXT NOT NULL DEFAULT '';
		CREATE INDEX signatures_cert ON signatures(cert_sha256);
		CREATE INDEX signatures_created ON signatures(created_at, id);
		CREATE INDEX signatures_status ON signatures(status, created_at, id);
		ALTER TABLE signature_annotations ADD COLUMN created_at BIGINT NOT NULL DEFAULT 0;
		UPDATE signature_annotations SET created_at = (SELECT s.created_at FROM signatures s WHERE s.id = signature_annotations.signature_id);
		DROP INDEX signature_annotations_kv;
		CREATE INDEX signature_annotations_kv ON signature_annotations(key, value, created_at, signature_id);
		CREATE TABLE ca_certificates (
			sha256 TEXT PRIMARY KEY,
			serial TEXT NOT NULL,
			issued_at BIGINT NOT NULL,
			not_after BIGINT NOT NULL,
			issuer TEXT NOT NULL,
			subject TEXT NOT NULL,
			project_path TEXT NOT NULL DEFAULT '',
			claims TEXT NOT NULL
		);
		CREATE INDEX ca_certificates_issued ON ca_certificates(issued_at);
		CREATE TABLE ca_certificate_claims (
			cert_sha256 TEXT NOT NULL REFERENCES ca_certificates(sha256) ON DELETE CASCADE,
			claim TEXT NOT NULL,
			value TEXT NOT NULL,
			PRIMARY KEY (cert_sha256, claim)
		);
		CREATE INDEX ca_certificate_claims_kv ON ca_certificate_claims(claim, value);
		CREATE TABLE signature_facts (
			field TEXT NOT NULL,
			value TEXT{{bytewise}} NOT NULL,
			created_at BIGINT NOT NULL,
			signature_id BIGINT NOT NULL REFERENCES signatures(id) ON DELETE CASCADE,
			repository_id BIGINT NOT NULL,
			basis TEXT NOT NULL,
			PRIMARY KEY (field, value, created_at, signature_id)
		)` + noRowid + `;
		CREATE INDEX signature_facts_signature ON signature_facts(signature_id, field, value);`
}
