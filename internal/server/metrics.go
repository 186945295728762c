package server

import (
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	bytesIn  *prometheus.CounterVec
	bytesOut *prometheus.CounterVec
	uploads  prometheus.Gauge
	// pulls counts the pulls the pull policy refused or warned about.
	pulls *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hallmark_http_requests_total", Help: "HTTP requests by route, method and status code.",
		}, []string{"route", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "hallmark_http_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"route", "method"}),
		bytesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hallmark_http_request_bytes_total", Help: "Request body bytes received, by route.",
		}, []string{"route"}),
		bytesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hallmark_http_response_bytes_total", Help: "Response body bytes sent, by route.",
		}, []string{"route"}),
		uploads: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hallmark_registry_uploads_in_progress", Help: "Blob upload sessions started by this process and not yet finished or cancelled.",
		}),
		pulls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hallmark_registry_pull_policy_total",
			Help: "Manifest pulls the pull policy refused (quarantined, unsigned_denied) or served with a warning (unsigned_warned, signature_pending), by outcome.",
		}, []string{"outcome"}),
	}
	reg.MustRegister(m.requests, m.latency, m.bytesIn, m.bytesOut, m.uploads, m.pulls)
	return m
}

// instrument wraps h, recording per-route counts, latency and bytes. The
// route label comes from the handler through SetRoute, so paths with
// repository names never become label values.
func (m *metrics) instrument(fallbackRoute string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rw := &recorder{ResponseWriter: w, status: http.StatusOK, route: fallbackRoute}
		var body *countingReader
		if r.Body != nil && r.Body != http.NoBody {
			body = &countingReader{r: r.Body}
			r.Body = body
		}
		h.ServeHTTP(rw, r)
		method := methodName(r.Method)
		m.requests.WithLabelValues(rw.route, method, strconv.Itoa(rw.status)).Inc()
		m.latency.WithLabelValues(rw.route, method).Observe(time.Since(start).Seconds())
		if body != nil && body.n > 0 {
			m.bytesIn.WithLabelValues(rw.route).Add(float64(body.n))
		}
		if rw.n > 0 {
			m.bytesOut.WithLabelValues(rw.route).Add(float64(rw.n))
		}
	})
}

func methodName(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return m
	}
	return "OTHER"
}

type recorder struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
	n           int64
	route       string
}

func (r *recorder) SetRoute(s string) { r.route = s }

func (r *recorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.status, r.wroteHeader = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	r.wroteHeader = true
	n, err := r.ResponseWriter.Write(p)
	r.n += int64(n)
	return n, err
}

// ReadFrom keeps the sendfile path of the underlying writer.
func (r *recorder) ReadFrom(src io.Reader) (int64, error) {
	r.wroteHeader = true
	var n int64
	var err error
	if rf, ok := r.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		n, err = io.Copy(r.ResponseWriter, src)
	}
	r.n += n
	return n, err
}

func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

type countingReader struct {
	r io.ReadCloser
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countingReader) Close() error { return c.r.Close() }
