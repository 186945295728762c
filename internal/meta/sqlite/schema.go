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
}
