package certreload

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// writePair writes a self-signed certificate for cn.
func writePair(t *testing.T, dir, cn string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{cn}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func commonName(t *testing.T, c *tls.Certificate) string {
	t.Helper()
	x, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return x.Subject.CommonName
}

func TestReloadsChangedFilesAndKeepsTheOldPairOnAHalfWrite(t *testing.T) {
	dir := t.TempDir()
	cf, kf := writePair(t, dir, "one.test")
	r, err := New(cf, kf, time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	r.now = func() time.Time { return now }
	get := func() string {
		c, err := r.GetCertificate(nil)
		if err != nil {
			t.Fatal(err)
		}
		return commonName(t, c)
	}
	if got := get(); got != "one.test" {
		t.Fatalf("got %s", got)
	}
	// Only the certificate rewritten: the pair does not match, keep the old.
	keyBefore, _ := os.ReadFile(kf)
	writePair(t, dir, "two.test")
	if err := os.WriteFile(kf, keyBefore, 0o600); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Second)
	if got := get(); got != "one.test" {
		t.Fatalf("mismatched pair served: %s", got)
	}
	// The whole new pair: served after the next check.
	writePair(t, dir, "three.test")
	if got := get(); got != "one.test" {
		t.Fatalf("reloaded before the check interval: %s", got)
	}
	now = now.Add(2 * time.Second)
	if got := get(); got != "three.test" {
		t.Fatalf("after renewal: %s, want three.test", got)
	}
}

func TestNewRefusesAMissingPair(t *testing.T) {
	if _, err := New("/nonexistent.crt", "/nonexistent.key", 0, nil); err == nil {
		t.Fatal("no error")
	}
}
