package s3

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	s3api "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"

	"github.com/hallmark-dev/hallmark/internal/blob"
)

// An upload session is the object uploads/<id>/state.json and the data
// segments it lists, uploads/<id>/seg-<random>. Segments are immutable and
// never reused, so two servers racing on one session cannot overwrite each
// other's data: the state object written last wins, and it always names
// segments that hold exactly the bytes its hash state has seen.
//
// The segments keep a shape that lets Commit assemble them with S3's
// multipart copy, whose parts must be at least 5 MiB except the last:
//
//   - "big" segments (at least minPartSize) come first;
//   - then a tail of "small" ones, less than minPartSize in total, each at
//     least twice as large as the next.
//
// A chunk that brings the tail to minPartSize or more becomes a big
// segment holding the tail's bytes (read back, at most 5 MiB) followed by
// the chunk. A smaller chunk becomes a small segment, merged with the last
// small segments while they are less than twice its size (like a binary
// counter), so a flood of tiny chunks keeps at most ~23 segments and
// rewrites each byte a logarithmic number of times, not once per chunk.

// maxStateSize bounds the state object read back (10,000 segments fit).
const maxStateSize = 4 << 20

var segName = regexp.MustCompile(`^seg-[0-9a-f]{16}$`)

type segment struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
}

type state struct {
	Repository string    `json:"repository"`
	Algorithm  string    `json:"algorithm"`
	Size       int64     `json:"size"`
	Hash       []byte    `json:"hash"`
	Started    time.Time `json:"started"`
	Segments   []segment `json:"segments"`
}

// tailStart returns the index of the first small segment.
func tailStart(segs []segment) int {
	for i, sg := range segs {
		if sg.Size < minPartSize {
			return i
		}
	}
	return len(segs)
}

func totalSize(segs []segment) int64 {
	var n int64
	for _, sg := range segs {
		n += sg.Size
	}
	return n
}

// commitParts is how many parts Commit's multipart copy of segs needs when
// one copy request copies at most copyPart bytes.
func commitParts(segs []segment, copyPart int64) int {
	t := tailStart(segs)
	n := 0
	for _, sg := range segs[:t] {
		n += int((sg.Size + copyPart - 1) / copyPart)
	}
	if t < len(segs) {
		n++
	}
	return n
}

// check reports whether st is a state this driver could have written.
func (st *state) check() error {
	if !digest.Algorithm(st.Algorithm).Available() {
		return fmt.Errorf("unknown algorithm %q", st.Algorithm)
	}
	t := tailStart(st.Segments)
	var prev int64
	for i, sg := range st.Segments {
		if !segName.MatchString(sg.Name) || sg.Size <= 0 {
			return fmt.Errorf("invalid segment %q (%d bytes)", sg.Name, sg.Size)
		}
		if i > t && sg.Size*2 > prev {
			return errors.New("segments out of order")
		}
		prev = sg.Size
	}
	if totalSize(st.Segments[t:]) >= minPartSize || totalSize(st.Segments) != st.Size || st.Size < 0 {
		return errors.New("segment sizes do not add up")
	}
	return nil
}

func validID(id string) bool {
	if len(id) != 32 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil && strings.ToLower(id) == id
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

type uploads struct{ s *Store }

// Uploads implements blob.Store.
func (s *Store) Uploads() blob.Uploads { return uploads{s} }

func (s *Store) uploadKey(id, name string) string { return s.key("uploads/" + id + "/" + name) }

func (u uploads) New(ctx context.Context, repo string, alg digest.Algorithm) (blob.Upload, error) {
	if !alg.Available() {
		return nil, fmt.Errorf("digest algorithm %q is not available", alg)
	}
	up := &upload{s: u.s, id: randomHex(16), h: alg.Hash(),
		st: state{Repository: repo, Algorithm: string(alg), Started: time.Now().UTC()}}
	if err := up.save(ctx, up.st); err != nil {
		return nil, err
	}
	return up, nil
}

func (u uploads) Resume(ctx context.Context, id string) (blob.Upload, error) {
	if !validID(id) {
		return nil, blob.ErrUploadNotFound
	}
	k := u.s.uploadKey(id, "state.json")
	out, err := u.s.client.GetObject(ctx, &s3api.GetObjectInput{Bucket: &u.s.cfg.Bucket, Key: &k})
	if isNotFound(err) {
		return nil, blob.ErrUploadNotFound
	}
	if err != nil {
		return nil, u.s.wrap(err, "read upload state")
	}
	raw, err := io.ReadAll(io.LimitReader(out.Body, maxStateSize+1))
	out.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("%w: read upload state: %v", blob.ErrUnavailable, err)
	}
	var st state
	if err := json.Unmarshal(raw, &st); err != nil || len(raw) > maxStateSize {
		return nil, fmt.Errorf("%w: upload %s has corrupt state: %v", blob.ErrUploadNotFound, id, err)
	}
	if err := st.check(); err != nil {
		return nil, fmt.Errorf("%w: upload %s has corrupt state: %v", blob.ErrUploadNotFound, id, err)
	}
	up := &upload{s: u.s, id: id, h: digest.Algorithm(st.Algorithm).Hash(), st: st}
	if err := up.h.(encoding.BinaryUnmarshaler).UnmarshalBinary(st.Hash); err != nil {
		return nil, fmt.Errorf("%w: upload %s has corrupt hash state: %v", blob.ErrUploadNotFound, id, err)
	}
	return up, nil
}

type upload struct {
	s    *Store
	id   string
	h    hash.Hash
	st   state // as last saved
	done bool
}

func (up *upload) ID() string         { return up.id }
func (up *upload) Repository() string { return up.st.Repository }
func (up *upload) Size() int64        { return up.st.Size }
func (up *upload) Started() time.Time { return up.st.Started }

// save writes st, with the hash's current state, as the session's state
// and makes it up's.
func (up *upload) save(ctx context.Context, st state) error {
	hs, err := up.h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return err
	}
	st.Hash = hs
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if err := up.s.put(ctx, up.s.uploadKey(up.id, "state.json"), b); err != nil {
		return err
	}
	up.st = st
	return nil
}

func (s *Store) put(ctx context.Context, key string, data []byte) error {
	_, err := s.client.PutObject(ctx, &s3api.PutObjectInput{Bucket: &s.cfg.Bucket, Key: &key, Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data)))})
	return s.wrap(err, "write object")
}

// readSegments reads segs, in order, into dst (exactly their total size).
func (up *upload) readSegments(ctx context.Context, segs []segment, dst []byte) error {
	return up.copySegments(ctx, segs, &sliceWriter{b: dst})
}

// sliceWriter fills b and refuses to write past its end.
type sliceWriter struct{ b []byte }

func (w *sliceWriter) Write(p []byte) (int, error) {
	if len(p) > len(w.b) {
		return 0, io.ErrShortBuffer
	}
	w.b = w.b[copy(w.b, p):]
	return len(p), nil
}

// deleteSegments removes segments no state refers to any more. Failures
// are ignored: whatever is left goes with the session (Commit, Cancel or
// PurgeUploads remove everything under its prefix).
func (up *upload) deleteSegments(ctx context.Context, segs []segment) {
	for _, sg := range segs {
		k := up.s.uploadKey(up.id, sg.Name)
		up.s.client.DeleteObject(ctx, &s3api.DeleteObjectInput{Bucket: &up.s.cfg.Bucket, Key: &k})
	}
}

func (up *upload) Append(ctx context.Context, offset int64, r io.Reader) (int64, error) {
	if up.done {
		return 0, errors.New("upload session is closed")
	}
	if offset != up.st.Size {
		return 0, blob.ErrRangeMismatch
	}
	n, err := up.append(ctx, r)
	if err != nil {
		// This chunk never happened: back to the saved hash state.
		if uerr := up.h.(encoding.BinaryUnmarshaler).UnmarshalBinary(up.st.Hash); uerr != nil {
			return 0, errors.Join(err, uerr)
		}
		return 0, err
	}
	return n, nil
}

func (up *upload) append(ctx context.Context, r io.Reader) (int64, error) {
	segs := up.st.Segments
	t := tailStart(segs)
	tailSize := totalSize(segs[t:])
	bp, err := up.s.bufs.get(ctx)
	if err != nil {
		return 0, err
	}
	defer up.s.bufs.put(bp)
	buf := *bp
	hr := io.TeeReader(r, up.h)
	// Read the chunk after room for the tail, up to where tail and chunk
	// make a minimum-size part.
	n, err := blob.ReadBlock(hr, buf[tailSize:minPartSize])
	switch {
	case err == io.EOF && n == 0:
		return 0, nil
	case err == io.EOF && tailSize+int64(n) < minPartSize:
		return int64(n), up.appendSmall(ctx, buf, t, tailSize, int64(n))
	case err == nil || err == io.EOF:
		return up.appendBig(ctx, bp, t, tailSize, hr)
	default:
		return 0, err
	}
}

// appendSmall stores the n bytes at buf[tailSize:] as a small segment,
// merged with the last small segments while they are less than twice its
// size. The tail's bytes go in front of it in buf.
func (up *upload) appendSmall(ctx context.Context, buf []byte, t int, tailSize, n int64) error {
	segs := up.st.Segments
	j, size := len(segs), n
	for j > t && segs[j-1].Size < 2*size {
		size += segs[j-1].Size
		j--
	}
	start := tailSize + n - size
	if err := up.readSegments(ctx, segs[j:], buf[start:tailSize]); err != nil {
		return err
	}
	name := "seg-" + randomHex(8)
	if err := up.s.put(ctx, up.s.uploadKey(up.id, name), buf[start:tailSize+n]); err != nil {
		return err
	}
	next := up.st
	next.Size += n
	next.Segments = append(slices.Clone(segs[:j]), segment{Name: name, Size: size})
	return up.commitState(ctx, next, segs[j:], name)
}

// appendBig stores the tail and the rest of the chunk (buf[tailSize:
// minPartSize] already read, then hr) as one big segment.
func (up *upload) appendBig(ctx context.Context, bp *[]byte, t int, tailSize int64, hr io.Reader) (int64, error) {
	segs, buf := up.st.Segments, *bp
	if err := up.readSegments(ctx, segs[t:], buf[:tailSize]); err != nil {
		return 0, err
	}
	k, err := blob.ReadBlock(hr, buf[minPartSize:])
	filled := minPartSize + int64(k)
	name := "seg-" + randomHex(8)
	key := up.s.uploadKey(up.id, name)
	var size int64
	switch err {
	case io.EOF:
		// All of it fits in one part: one PUT.
		if err := up.s.put(ctx, key, buf[:filled]); err != nil {
			return 0, err
		}
		size = filled
	case nil:
		if size, err = up.s.putMultipart(ctx, key, bp, hr); err != nil {
			return 0, err
		}
	default:
		return 0, err
	}
	next := up.st
	next.Size += size - tailSize
	next.Segments = append(slices.Clone(segs[:t]), segment{Name: name, Size: size})
	if err := up.commitState(ctx, next, segs[t:], name); err != nil {
		return 0, err
	}
	return size - tailSize, nil
}

// commitState saves next, whose newest segment is name, and deletes the
// segments it replaced. If next is too fragmented for Commit, or cannot be
// saved, the new segment is removed and the old state stays.
func (up *upload) commitState(ctx context.Context, next state, replaced []segment, name string) error {
	err := error(nil)
	if n := commitParts(next.Segments, up.s.copyPart); n > maxParts {
		err = fmt.Errorf("upload %s would need %d parts, more than S3's %d; send larger chunks", up.id, n, maxParts)
	} else {
		err = up.save(ctx, next)
	}
	if err != nil {
		up.deleteSegments(context.WithoutCancel(ctx), []segment{{Name: name}})
		return err
	}
	up.deleteSegments(ctx, replaced)
	return nil
}

// putMultipart uploads *first (a full part) and then all of r as a
// multipart upload to key, up to partsInFlight parts at a time, and returns
// the object's size. first stays the caller's; the other buffers come from
// the store's pool (without waiting: when none is free, the upload goes on
// with the buffers it has) and are returned before it returns.
func (s *Store) putMultipart(ctx context.Context, key string, first *[]byte, r io.Reader) (int64, error) {
	mpu, err := s.client.CreateMultipartUpload(ctx, &s3api.CreateMultipartUploadInput{Bucket: &s.cfg.Bucket, Key: &key})
	if err != nil {
		return 0, s.wrap(err, "start multipart upload")
	}
	var (
		mu    sync.Mutex
		parts []types.CompletedPart
	)
	free := make(chan *[]byte, partsInFlight+1) // this upload's buffers between parts
	held := 1                                   // buffers this upload has (first included)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(partsInFlight)
	upload := func(num int32, bp *[]byte, n int) {
		g.Go(func() error {
			defer func() { free <- bp }()
			out, err := s.client.UploadPart(gctx, &s3api.UploadPartInput{Bucket: &s.cfg.Bucket, Key: &key, UploadId: mpu.UploadId,
				PartNumber: aws.Int32(num), Body: bytes.NewReader((*bp)[:n]), ContentLength: aws.Int64(int64(n))})
			if err != nil {
				return s.wrap(err, "upload part")
			}
			mu.Lock()
			parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(num)})
			mu.Unlock()
			return nil
		})
	}
	size := int64(len(*first))
	upload(1, first, len(*first))
	var rerr error
	for num := int32(2); gctx.Err() == nil; num++ {
		var bp *[]byte
		select {
		case bp = <-free:
		default:
			if held <= partsInFlight {
				if b, ok := s.bufs.tryGet(); ok {
					bp, held = b, held+1
				}
			}
			if bp == nil {
				select {
				case bp = <-free:
				case <-gctx.Done():
				}
			}
		}
		if bp == nil {
			break
		}
		n, err := blob.ReadBlock(r, *bp)
		if n > 0 && num > maxParts {
			err = fmt.Errorf("chunk is larger than %d parts of %d bytes; send it in smaller chunks", maxParts, s.cfg.PartSize)
		} else if n > 0 {
			size += int64(n)
			upload(num, bp, n)
			bp = nil
		}
		if bp != nil {
			free <- bp
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			rerr = err
			break
		}
	}
	err = errors.Join(rerr, g.Wait())
	for range held {
		if bp := <-free; bp != first {
			s.bufs.put(bp)
		}
	}
	if err == nil {
		err = ctx.Err()
	}
	if err == nil {
		slices.SortFunc(parts, func(a, b types.CompletedPart) int { return int(*a.PartNumber - *b.PartNumber) })
		_, err = s.client.CompleteMultipartUpload(ctx, &s3api.CompleteMultipartUploadInput{Bucket: &s.cfg.Bucket, Key: &key, UploadId: mpu.UploadId,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
		err = s.wrap(err, "complete multipart upload")
	}
	if err != nil {
		s.abort(ctx, key, mpu.UploadId)
		return 0, err
	}
	return size, nil
}

// abort ends a multipart upload (even when ctx was cancelled: the client
// went away, the parts should not stay).
func (s *Store) abort(ctx context.Context, key string, id *string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	s.client.AbortMultipartUpload(ctx, &s3api.AbortMultipartUploadInput{Bucket: &s.cfg.Bucket, Key: &key, UploadId: id})
}

func (up *upload) Commit(ctx context.Context, want digest.Digest) (int64, error) {
	if up.done {
		return 0, errors.New("upload session is closed")
	}
	err := blob.Verify(want, digest.Algorithm(up.st.Algorithm), up.h, up.st.Size, func(w io.Writer) error {
		return up.copySegments(ctx, up.st.Segments, w)
	}, func() error { return up.Cancel(ctx) })
	if err != nil {
		return 0, err
	}
	key, err := up.s.blobKey(want)
	if err != nil {
		return 0, err
	}
	_, err = up.s.client.HeadObject(ctx, &s3api.HeadObjectInput{Bucket: &up.s.cfg.Bucket, Key: &key})
	switch {
	case err == nil:
		// Already stored (content addressed): nothing to copy.
	case isNotFound(err):
		if err := up.assemble(ctx, key); err != nil {
			return 0, err
		}
	default:
		return 0, up.s.wrap(err, "stat blob")
	}
	up.done = true
	// The blob is in place; what is left of the session is garbage that
	// PurgeUploads removes if this fails.
	up.s.deletePrefix(ctx, up.s.uploadKey(up.id, ""), false)
	return up.st.Size, nil
}

// copySegments writes the content of segs, in order, to w.
func (up *upload) copySegments(ctx context.Context, segs []segment, w io.Writer) error {
	for _, sg := range segs {
		k := up.s.uploadKey(up.id, sg.Name)
		out, err := up.s.client.GetObject(ctx, &s3api.GetObjectInput{Bucket: &up.s.cfg.Bucket, Key: &k})
		if isNotFound(err) {
			return fmt.Errorf("%w: upload %s lost its segment %s (a concurrent request on the same upload?); start the upload again", blob.ErrUploadNotFound, up.id, sg.Name)
		}
		if err != nil {
			return up.s.wrap(err, "read upload segment")
		}
		n, err := io.Copy(w, out.Body)
		out.Body.Close()
		if errors.Is(err, io.ErrShortBuffer) || err == nil && n != sg.Size {
			return fmt.Errorf("%w: upload %s: segment %s is not the %d bytes its state says; start the upload again", blob.ErrUploadNotFound, up.id, sg.Name, sg.Size)
		}
		if err != nil {
			return fmt.Errorf("%w: read upload segment: %v", blob.ErrUnavailable, err)
		}
	}
	return nil
}

func (s *Store) copySource(key string) *string {
	return aws.String((&url.URL{Path: s.cfg.Bucket + "/" + key}).EscapedPath())
}

// assemble creates the object key from the session's segments in one
// atomic step: a PUT, a server-side copy or a completed multipart copy.
func (up *upload) assemble(ctx context.Context, key string) error {
	s, segs := up.s, up.st.Segments
	switch {
	case len(segs) == 1 && segs[0].Size <= s.copyPart:
		_, err := s.client.CopyObject(ctx, &s3api.CopyObjectInput{Bucket: &s.cfg.Bucket, Key: &key, CopySource: s.copySource(s.uploadKey(up.id, segs[0].Name))})
		return s.wrap(err, "copy upload to blob")
	case up.st.Size < minPartSize:
		// No segment or a few small ones: one PUT of at most 5 MiB.
		bp, err := s.bufs.get(ctx)
		if err != nil {
			return err
		}
		defer s.bufs.put(bp)
		data := (*bp)[:up.st.Size]
		if err := up.readSegments(ctx, segs, data); err != nil {
			return err
		}
		return s.put(ctx, key, data)
	}
	mpu, err := s.client.CreateMultipartUpload(ctx, &s3api.CreateMultipartUploadInput{Bucket: &s.cfg.Bucket, Key: &key})
	if err != nil {
		return s.wrap(err, "start multipart copy")
	}
	t := tailStart(segs)
	parts := make([]types.CompletedPart, commitParts(segs, s.copyPart))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(copiesInFlight)
	num := int32(0)
	for _, sg := range segs[:t] {
		// Equal ranges of at most copyPart bytes (each at least half of
		// that when there are several).
		n := (sg.Size + s.copyPart - 1) / s.copyPart
		src := s.copySource(s.uploadKey(up.id, sg.Name))
		for i := range n {
			from, to := sg.Size*i/n, sg.Size*(i+1)/n-1
			num++
			pn := num
			g.Go(func() error {
				rng := fmt.Sprintf("bytes=%d-%d", from, to)
				out, err := s.client.UploadPartCopy(gctx, &s3api.UploadPartCopyInput{Bucket: &s.cfg.Bucket, Key: &key, UploadId: mpu.UploadId,
					PartNumber: aws.Int32(pn), CopySource: src, CopySourceRange: &rng})
				if err != nil {
					return s.wrap(err, "copy part")
				}
				parts[pn-1] = types.CompletedPart{ETag: out.CopyPartResult.ETag, PartNumber: aws.Int32(pn)}
				return nil
			})
		}
	}
	if t < len(segs) {
		// The small tail (under 5 MiB) is the last part.
		num++
		pn := num
		g.Go(func() error {
			bp, err := s.bufs.get(gctx)
			if err != nil {
				return err
			}
			defer s.bufs.put(bp)
			data := (*bp)[:totalSize(segs[t:])]
			if err := up.readSegments(gctx, segs[t:], data); err != nil {
				return err
			}
			out, err := s.client.UploadPart(gctx, &s3api.UploadPartInput{Bucket: &s.cfg.Bucket, Key: &key, UploadId: mpu.UploadId,
				PartNumber: aws.Int32(pn), Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data)))})
			if err != nil {
				return s.wrap(err, "upload last part")
			}
			parts[pn-1] = types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(pn)}
			return nil
		})
	}
	err = g.Wait()
	if err == nil {
		_, err = s.client.CompleteMultipartUpload(ctx, &s3api.CompleteMultipartUploadInput{Bucket: &s.cfg.Bucket, Key: &key, UploadId: mpu.UploadId,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
		err = s.wrap(err, "complete multipart copy")
	}
	if err != nil {
		s.abort(ctx, key, mpu.UploadId)
	}
	return err
}

func (up *upload) Cancel(ctx context.Context) error {
	up.done = true
	return up.s.deletePrefix(ctx, up.s.uploadKey(up.id, ""), true)
}

func (up *upload) Close() error {
	up.done = true
	return nil
}
