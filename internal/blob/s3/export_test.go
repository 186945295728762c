package s3

// SetCopyPartSize makes s copy segments larger than n bytes in several
// ranges (S3's limit is 5 GiB; tests use a few MiB). n must be at least
// 2*minPartSize so every range but the last is a valid part.
func SetCopyPartSize(s *Store, n int64) { s.copyPart = n }

// Direct reports whether a whole read of size bytes would be read on a
// connection of its own.
func Direct(s *Store, size int64) bool { return s.direct(size) }
