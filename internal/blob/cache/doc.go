// Package cache keeps the blobs a replica recently served from object
// storage on its local disk, so that the next pull of a hot blob (a base
// layer every CI job pulls) is sent from a local file with sendfile instead
// of being copied through the server from S3. After a replica served a
// whole blob from S3 it fetches its own copy in the background (the pull
// itself runs at S3's speed, not the disk's). Blobs are content addressed,
// so a copy never goes stale: one is kept only after its bytes matched
// their digest, and whether a repository may read a blob is decided by the
// metadata database before the cache is asked. Nothing is fsynced: the
// directory is emptied when the cache is opened.
package cache
