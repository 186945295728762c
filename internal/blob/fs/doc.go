// Package fs is the filesystem blob store. Blobs live at
// blobs/<algorithm>/<first two hex>/<hex>; uploads at uploads/<id>/ with the
// data file and a state file holding the size and the serialized hash state,
// so a chunked upload resumes without re-reading its data. A blob appears
// only by an atomic rename after its data was fsynced and its digest checked.
package fs
