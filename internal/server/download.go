package server

import (
	"net/http"
	"os"
	"runtime"
	"strconv"
	"time"
)

// DownloadPath is where the server offers its own executable, which is also
// the hallmark client, to CI jobs: GET /download/hallmark-<os>-<arch>.
const DownloadPath = "/download/"

// setupDownload serves the running hallmark executable, so a CI job can
// fetch the client that matches the server (wget $HALLMARK_URL/download/
// hallmark-linux-amd64). Only the server's own platform is available.
func (s *Server) setupDownload(mux *http.ServeMux) {
	name := "hallmark-" + runtime.GOOS + "-" + runtime.GOARCH
	mux.Handle("GET "+DownloadPath+"{file}", s.metrics.instrument("download", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("file") != name {
			http.Error(w, "this server offers only "+DownloadPath+name+" (the platform it runs on)", http.StatusNotFound)
			return
		}
		exe, err := os.Executable()
		if err != nil {
			s.log.ErrorContext(r.Context(), "download: locating the executable", "err", err)
			http.Error(w, "the server cannot locate its executable", http.StatusInternalServerError)
			return
		}
		f, err := os.Open(exe)
		if err != nil {
			s.log.ErrorContext(r.Context(), "download: opening the executable", "err", err)
			http.Error(w, "the server cannot read its executable", http.StatusInternalServerError)
			return
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			http.Error(w, "the server cannot read its executable", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
		w.Header().Set("X-Hallmark-Platform", runtime.GOOS+"/"+runtime.GOARCH)
		w.Header().Set("Content-Length", strconv.FormatInt(fi.Size(), 10))
		http.ServeContent(w, r, name, time.Time{}, f)
	})))
}
