package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// DebugAddr is the address the profiler listens on (--debug-addr), nil
// when it is off.
func (s *Server) DebugAddr() net.Addr {
	if s.debugLn == nil {
		return nil
	}
	return s.debugLn.Addr()
}

// serveDebug serves Go's profiler on --debug-addr (a loopback address,
// checked by the configuration) until ctx is done.
func (s *Server) serveDebug(ctx context.Context) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	s.log.Info("profiler listening", "addr", s.debugLn.Addr().String())
	if err := srv.Serve(s.debugLn); err != nil && !errors.Is(err, http.ErrServerClosed) && ctx.Err() == nil {
		s.log.Warn("profiler stopped", "err", err)
	}
}
