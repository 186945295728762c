package s3

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	s3api "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/hallmark-dev/hallmark/internal/blob"
)

// A whole blob of at least spliceMin bytes from an S3 server reached over
// plain HTTP (one on the same host or network, as MinIO or versitygw
// often are) is read on a connection of its own, so that the server can
// splice its body into the client's connection: the bytes then pass
// through the kernel only, never through a buffer of this process (two
// copies fewer per byte than reading the body and writing it again).
// TLS endpoints, endpoints behind an HTTP proxy and smaller blobs take the
// SDK's client.
const spliceMin = 1 << 20

// presignTTL is how long the presigned URL of a spliced GET is valid: it
// is used at once.
const presignTTL = time.Minute

// errNoSplice: this GET cannot be spliced; the SDK's client reads it.
var errNoSplice = errors.New("s3: not spliceable")

// rawBody is the body of a GET read on its own connection: the part the
// header read already buffered, then the rest straight from the socket.
type rawBody struct {
	conn     net.Conn
	buffered []byte
	rest     int64 // bytes still on the socket
	stop     func() bool
}

// spliceable reports whether the whole object of size bytes may be read
// by rawGet.
func (s *Store) spliceable(size int64) bool {
	if size < spliceMin || s.cfg.Endpoint == "" {
		return false
	}
	u, err := url.Parse(s.cfg.Endpoint)
	if err != nil || u.Scheme != "http" {
		return false
	}
	p, err := http.ProxyFromEnvironment(&http.Request{URL: u})
	return err == nil && p == nil
}

// rawGet starts a GET of the whole object key (size bytes) on a new
// connection, signed as the SDK signs (a presigned URL), and reads the
// answer's header. An answer other than 200 with the expected length is
// an error (blob.ErrNotFound for 404); errNoSplice means the SDK's client
// should read it instead. The connection is closed when ctx is done.
func (s *Store) rawGet(ctx context.Context, key string, size int64) (*rawBody, error) {
	ps, err := s.presign.PresignGetObject(ctx, &s3api.GetObjectInput{Bucket: &s.cfg.Bucket, Key: &key}, s3api.WithPresignExpires(presignTTL))
	if err != nil {
		return nil, s.wrap(err, "presign blob GET")
	}
	req, err := http.NewRequestWithContext(ctx, ps.Method, ps.URL, nil)
	if err != nil || req.URL.Scheme != "http" {
		return nil, errNoSplice
	}
	for k, vs := range ps.SignedHeader {
		if http.CanonicalHeaderKey(k) != "Host" {
			req.Header[k] = vs
		}
	}
	host := req.URL.Host
	if req.URL.Port() == "" {
		host = net.JoinHostPort(req.URL.Hostname(), "80")
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, fmt.Errorf("%w: read blob: %v", blob.ErrUnavailable, err)
	}
	// A client that goes away, or a request that ends, ends the read.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	fail := func(err error) (*rawBody, error) {
		stop()
		conn.Close()
		return nil, err
	}
	if err := req.Write(conn); err != nil {
		return fail(fmt.Errorf("%w: read blob: %v", blob.ErrUnavailable, err))
	}
	br := bufio.NewReaderSize(conn, 16<<10)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return fail(fmt.Errorf("%w: read blob: %v", blob.ErrUnavailable, err))
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return fail(blob.ErrNotFound)
	case resp.StatusCode != http.StatusOK:
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fail(fmt.Errorf("%w: read blob: %s: %q", blob.ErrUnavailable, resp.Status, msg))
	case resp.ContentLength != size || len(resp.TransferEncoding) > 0 || resp.Uncompressed:
		// Not the plain body of the length recorded: let the SDK read it.
		return fail(errNoSplice)
	}
	n := int64(min(br.Buffered(), int(size)))
	buffered, _ := br.Peek(int(n))
	return &rawBody{conn: conn, buffered: buffered, rest: size - n, stop: stop}, nil
}

// writeTo writes the body to w: the buffered part, then the rest from the
// socket through w's ReadFrom (an HTTP response on a TCP connection
// splices it).
func (b *rawBody) writeTo(w io.Writer) (int64, error) {
	n, err := w.Write(b.buffered)
	written := int64(n)
	if err != nil {
		return written, err
	}
	src := &io.LimitedReader{R: b.conn, N: b.rest}
	var m int64
	if rf, ok := w.(io.ReaderFrom); ok {
		m, err = rf.ReadFrom(src)
	} else {
		m, err = io.Copy(w, src)
	}
	written += m
	if err == nil && src.N > 0 {
		err = fmt.Errorf("%w: blob read ended %d bytes early", blob.ErrUnavailable, src.N)
	}
	return written, err
}

func (b *rawBody) close() error {
	b.stop()
	return b.conn.Close()
}
