package server

import (
	"context"
	"io"
	"net/http"
	"time"

	"github.com/brownout-io/brownout"
)

// backuper is a store that can copy itself while serving (the SQLite
// store; a server database is backed up with its own tools).
type backuper interface {
	Backup(ctx context.Context, w io.Writer) (int64, error)
}

// backup streams a consistent copy of the store: GET /api/v1/backup.
func (s *Server) backup(w http.ResponseWriter, r *http.Request) {
	b, ok := s.history.(backuper)
	if !ok {
		writeError(w, r, &brownout.Error{Code: "not_implemented", Message: "this store is not backed up through the API: use the database's own backup tools (pg_dump for PostgreSQL)"})
		return
	}
	p := principalFrom(r)
	w.Header().Set("Content-Type", "application/vnd.sqlite3")
	w.Header().Set("Content-Disposition", `attachment; filename="brownout-`+s.cfg.Now().UTC().Format("20060102T150405Z")+`.db"`)
	w.Header().Set("Cache-Control", "no-store")
	start := time.Now()
	// The copy is made before the first byte goes out, so a failure to
	// make it is still a clean error answer.
	pw := &lazyWriter{w: w}
	n, err := b.Backup(r.Context(), pw)
	if err != nil && !pw.started {
		writeError(w, r, err)
		return
	}
	if err != nil {
		s.log.Error("backup cut short", "err", err, "bytes", n)
		return
	}
	s.log.Info("backup taken", "actor", p.Name, "bytes", n, "duration", time.Since(start))
}

// lazyWriter sets the status on the first write, so that an error before
// any byte can still become a JSON error answer.
type lazyWriter struct {
	w       http.ResponseWriter
	started bool
}

func (l *lazyWriter) Write(p []byte) (int, error) {
	if !l.started {
		l.started = true
		l.w.Header().Set("X-Content-Type-Options", "nosniff")
		l.w.Header().Del("Content-Length")
		l.w.WriteHeader(http.StatusOK)
	}
	return l.w.Write(p)
}
