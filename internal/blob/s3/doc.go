// Package s3 is the blob store on an S3-compatible object store (AWS S3,
// versitygw, MinIO, ...). Blobs live at <prefix>/blobs/<algorithm>/<xx>/<hex>;
// an upload session is a small state object (size, serialized hash state,
// the list of data segments) plus its segment objects under
// <prefix>/uploads/<id>/, so any server sharing the bucket can continue any
// upload and none needs local state. A blob key appears only by one atomic
// copy after the digest of the streamed bytes was checked.
package s3
