// Package certreload serves a TLS certificate from a pair of PEM files and
// picks up new files without a restart, so that a renewed certificate
// (certbot, cert-manager, a rotated secret) takes effect on the next
// handshake.
package certreload

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// ErrNoCertificate is returned by New when the pair cannot be loaded.
var ErrNoCertificate = errors.New("no usable TLS certificate")

// Reloader holds the current certificate. GetCertificate goes in
// tls.Config; it re-reads the files when their size or modification time
// changed, at most once per CheckEvery. A pair that fails to load (a
// half-written renewal) is logged and the previous certificate is kept.
type Reloader struct {
	certFile, keyFile string
	checkEvery        time.Duration
	log               *slog.Logger
	now               func() time.Time

	mu        sync.Mutex
	cert      *tls.Certificate
	stamp     string
	checkedAt time.Time
}

// New loads the pair once and fails if it cannot. checkEvery ≤ 0 means
// one second.
func New(certFile, keyFile string, checkEvery time.Duration, log *slog.Logger) (*Reloader, error) {
	if checkEvery <= 0 {
		checkEvery = time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Reloader{certFile: certFile, keyFile: keyFile, checkEvery: checkEvery, log: log, now: time.Now}
	stamp, err := r.stampOf()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoCertificate, err)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoCertificate, err)
	}
	r.cert, r.stamp, r.checkedAt = &cert, stamp, r.now()
	return r, nil
}

func (r *Reloader) stampOf() (string, error) {
	var s string
	for _, p := range []string{r.certFile, r.keyFile} {
		fi, err := os.Stat(p)
		if err != nil {
			return "", err
		}
		s += fmt.Sprintf("%d/%d;", fi.Size(), fi.ModTime().UnixNano())
	}
	return s, nil
}

// GetCertificate implements tls.Config.GetCertificate.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := r.now(); now.Sub(r.checkedAt) >= r.checkEvery {
		r.checkedAt = now
		r.reloadLocked()
	}
	return r.cert, nil
}

func (r *Reloader) reloadLocked() {
	stamp, err := r.stampOf()
	if err != nil {
		r.log.Warn("TLS certificate files unreadable; keeping the loaded certificate", "err", err)
		return
	}
	if stamp == r.stamp {
		return
	}
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		// Often the moment between writing the certificate and the key:
		// try again at the next check, with the old pair meanwhile.
		r.log.Warn("new TLS certificate does not load; keeping the previous one", "err", err)
		return
	}
	r.cert, r.stamp = &cert, stamp
	r.log.Info("TLS certificate reloaded", "cert", r.certFile)
}
