// Package gc is online garbage collection and retention: it deletes the
// blobs no manifest references and (with UntaggedManifests) the manifests
// nothing tags, refers to or signs, a grace period after they became
// unreferenced, while the registry keeps serving pushes; and it applies
// projects' retention policies (which remove tags). The design is GitLab's
// online GC (review queues fed by the writes themselves, workers claiming
// due reviews with SKIP LOCKED), with a tombstone per blob being deleted
// so no push can resurrect a row for an object GC is removing.
//
// # Queues
//
// The metadata store feeds two review queues in the transactions that
// cause the reviews (internal/meta/sqlstore/gc.go): a blob is queued, or
// its review postponed to now, when a push is about to commit it
// (PrepareBlob), links or mounts it, when a repository unlinks it and when
// a manifest referencing it is deleted; a manifest when it is pushed
// without a tag, loses its last tag (tag delete or moved, retention), or
// its index or subject is deleted. A review is due Grace after its last
// event. The collector claims due reviews in batches and re-checks each in
// the claiming transaction; the queues and tombstones are the only state,
// so any replica (or `hallmark gc`) may collect, and a crash loses
// nothing.
//
// # Blob collection and the races with pushes
//
// A blob is garbage when no manifest of any repository references its
// digest (blobs are shared by digest; a repository link alone does not
// keep it, as in GitLab: an upload not referenced within Grace is
// garbage). One batch (Store.CollectBlobs, one transaction):
//
//	G1  claim due reviews (FOR UPDATE SKIP LOCKED on PostgreSQL; SQLite's
//	    write lock serializes everything), lock the claimed digests'
//	    repository links (FOR UPDATE), check manifest references, and for
//	    the unreferenced ones delete links and blob rows and insert a
//	    tombstone (gc_blob_deletions), deleting the claimed reviews;
//	G2  delete the tombstoned objects from the blob store (bounded by
//	    deleteTimeout);
//	G3  delete the tombstones (Store.FinishBlobDeletions).
//
// A push of digest d does:
//
//	P1  PrepareBlob(d): upsert d's review to now, then fail with
//	    meta.ErrBlobDeleting if d is tombstoned (the registry waits and
//	    polls, up to BlobDeletingWait, then answers 503);
//	P2  commit the object (a no-op when it exists: content addressed);
//	P3  LinkBlob: upsert d's review again, check the tombstone, insert the
//	    blob row and the link;
//	P4  later, PutManifest checks the repository's links FOR SHARE and
//	    records its references.
//
// Why no acknowledged reference ever points at a deleted object:
//
//   - P1 and G1 write the same review row, so one waits for the other.
//     If G1 committed first, d is tombstoned and P1 waits until G3, which
//     comes after G2: the push commits its object after the deletion, and
//     it survives. If P1 came first, d's review is queued now, so no G1
//     finds it due for Grace: P2 and P3 happen inside that window (the
//     assumption behind the default of 24h: no blob commit takes as
//     long), and after P3 d is linked with a fresh review.
//   - P4 against G1: G1 locks the links P4 locks FOR SHARE before it
//     looks for references. If P4 locked first, G1 waits for P4's commit
//     and then sees its references (a new statement, a new snapshot) and
//     keeps d. If G1 locked first, P4 waits and finds the link gone:
//     MANIFEST_BLOB_UNKNOWN, nothing is acknowledged, the client pushes
//     the blob again. (The metatest contract suite runs this race on both
//     databases; on PostgreSQL it fails without G1's lock.)
//   - A cross-repository mount is one transaction (MountBlob) that upserts
//     the review first and locks the source link FOR SHARE: it either sees
//     the link and postpones the review, or finds no link and falls back
//     to an upload (P1 to P4).
//   - A HEAD saying a blob exists, then a manifest naming it: if GC
//     deleted it in between, the manifest push fails as above (Harbor's
//     "HEAD answers 404 while deleting" holds too: G1 deletes the rows
//     first). Nothing acknowledged is lost; the client pushes again.
//   - Reads racing G2 find no row (404) or, at worst, a row read just
//     before G1 and an object gone: a 404 for garbage.
//
// Untagged manifests (Store.CollectManifests) follow the same pattern:
// the batch locks the manifest rows (a push tagging one, or an index
// naming one as its child FOR SHARE, waits or is seen), then deletes, as
// an image delete does, those with no tag, no index in their repository
// naming them and no subject there; a Quarantine check keeps evidence.
//
// # Crashes
//
// Every step is a committed transaction or an idempotent storage delete:
// a crash after G1 leaves tombstones whose objects may or may not be gone.
// No row names them (G1 deleted the rows first), and pushes of them wait.
// A later sweep, on any replica, claims tombstones older than staleAfter
// (renewing them, so only one collector deletes each: a collector whose
// deadline passed no longer issues deletes) and finishes G2 and G3. A
// crash between P2 and P3 leaves an object with a queued review and no
// row: collected like any garbage. Objects no row, review or tombstone
// names (a crash before garbage collection existed, a removal a power
// loss undid: deletes are not fsynced) are found by `hallmark gc
// --orphans`, which lists the storage and queues them.
//
// # Images, signatures and the log
//
// Deleting an image (DELETE by digest, or collecting it) deletes its
// cosign ".sig"/".att" tags and the manifests they point at and its
// signature referrers (meta.Manifest.SignatureSubject), and queues its
// other referrers; the signature index keeps the signatures as history,
// marked deleted (no longer listed or found by the provenance API); the
// transparency log is never touched.
package gc
