package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// writeCert writes a self-signed certificate for 127.0.0.1 named cn.
func writeCert(t *testing.T, dir, cn string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	// Write the key and certificate under temporary names and rename, as
	// a renewal tool does.
	for _, f := range []struct {
		path string
		data []byte
	}{{keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})}, {certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}} {
		if err := os.WriteFile(f.path+".new", f.data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(f.path+".new", f.path); err != nil {
			t.Fatal(err)
		}
	}
	return certFile, keyFile
}

func insecureClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // self-signed test certificates
		DisableKeepAlives: true,
	}}
}

// TestTLSCertificateReloadAndHSTS serves TLS from files, swaps them while
// running, and sees the new certificate on the next connection.
func TestTLSCertificateReloadAndHSTS(t *testing.T) {
	dir := t.TempDir()
	cf, kf := writeCert(t, dir, "first.brownout.test")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(binary, "serve", "--addr", addr, "--data", t.TempDir(), "--tls-cert", cf, "--tls-key", kf, "--drain", "0")
	cmd.Env = append(os.Environ(), "CONTROLPLANE_ADMIN_TOKEN="+adminToken)
	var log lockedBuffer
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	hc := insecureClient()
	served := func() (string, http.Header) {
		resp, err := hc.Get("https://" + addr + "/healthz")
		if err != nil {
			return "", nil
		}
		defer resp.Body.Close()
		return resp.TLS.PeerCertificates[0].Subject.CommonName, resp.Header
	}
	eventuallyTrue(t, 20*time.Second, "TLS up", func() bool { cn, _ := served(); return cn != "" })
	cn, h := served()
	if cn != "first.brownout.test" {
		t.Fatalf("serving %q", cn)
	}
	if got := h.Get("Strict-Transport-Security"); got != "max-age=31536000" {
		t.Fatalf("HSTS %q, want max-age=31536000", got)
	}
	// Plain HTTP on the TLS port is refused, not served.
	if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("plain HTTP served on the TLS port")
		}
	}
	writeCert(t, dir, "second.brownout.test")
	eventuallyTrue(t, 10*time.Second, "renewed certificate served", func() bool { cn, _ := served(); return cn == "second.brownout.test" })
	if !strings.Contains(log.String(), "TLS certificate reloaded") {
		t.Errorf("no reload in the log:\n%s", log.String())
	}
}

// nginxConf proxies HTTPS on listen to the controller at upstream, the way
// docs/operations.md shows: websockets upgraded, the client's address and
// scheme passed on, buffering off for streams.
const nginxConf = `
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  map $http_upgrade $connection_upgrade { default upgrade; '' close; }
  upstream brownout { server %[2]s; keepalive 16; }
  server {
    listen %[3]s ssl;
    ssl_certificate %[4]s;
    ssl_certificate_key %[5]s;
    client_max_body_size 2m;
    location / {
      proxy_pass http://brownout;
      proxy_http_version 1.1;
      proxy_set_header Host $host;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_read_timeout 120s;
      proxy_buffering off;
    }
  }
}
`

// startNginx runs nginx in the foreground in front of upstream and returns
// its address.
func startNginx(t *testing.T, upstream string) string {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if _, err = os.Stat("/usr/sbin/nginx"); err == nil {
			bin = "/usr/sbin/nginx"
		} else if os.Getenv("CI") == "true" {
			t.Fatal("nginx not installed (apt-get install nginx; .ci/run does)")
		} else {
			t.Skip("nginx not installed")
		}
	}
	dir := t.TempDir()
	cf, kf := writeCert(t, dir, "proxy.brownout.test")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, nginxConf, dir, upstream, addr, cf, kf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", conf, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-g", "daemon off; master_process on;")
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		time.Sleep(100 * time.Millisecond)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	hc := insecureClient()
	eventuallyTrue(t, 10*time.Second, "nginx up", func() bool {
		resp, err := hc.Get("https://" + addr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return addr
}

// fromAddr is an HTTPS client whose connections come from a given
// loopback address, so that nginx sees distinct clients.
func fromAddr(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http.Transport{DialContext: d.DialContext, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // self-signed
}

// TestBehindNginx runs the controller behind a real nginx terminating
// TLS: websockets work through it, cookies are Secure because nginx says
// the browser used HTTPS, and with --trusted-proxies the auth throttle
// keys on each real client, not on nginx's one address.
func TestBehindNginx(t *testing.T) {
	ctl := startController(t, "--trusted-proxies", "127.0.0.1", "--drain", "0")
	proxy := startNginx(t, ctl.addr)
	base := "https://" + proxy

	// Websocket through nginx.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	api := newClient(ctl.url(), adminToken)
	api.must(t, "POST", "/api/v1/reports", map[string]any{"service": "px", "instance": "px-1", "cpu_percent": 1, "memory_percent": 1, "requests": 1, "errors": 0}, 202, nil)
	ws, _, err := websocket.Dial(ctx, "wss://"+proxy+"/api/v1/subscribe?service=px&instance=px-1", &websocket.DialOptions{
		HTTPClient:   fromAddr("127.0.0.1"),
		HTTPHeader:   http.Header{"Authorization": {"Bearer " + adminToken}},
		Subprotocols: []string{"brownout.v1"},
	})
	if err != nil {
		t.Fatalf("websocket through nginx: %v", err)
	}
	defer ws.CloseNow()
	_, data, err := ws.Read(ctx)
	if err != nil || !strings.Contains(string(data), `"type":"state"`) {
		t.Fatalf("first frame through nginx: %s %v", data, err)
	}
	var f struct{ Version uint64 }
	_ = json.Unmarshal(data, &f)
	api.must(t, "POST", "/api/v1/overrides", map[string]any{"service": "px", "level": 1, "reason": "through the proxy"}, 201, nil)
	_, data, err = ws.Read(ctx)
	if err != nil || !strings.Contains(string(data), `"level":1`) {
		t.Fatalf("pushed frame through nginx: %s %v", data, err)
	}

	// Dashboard sign-in through nginx: every cookie Secure.
	c := fromAddr("127.0.0.1")
	resp, err := c.Get(base + "/login")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="_csrf" value="([^"]+)"`).FindSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF field on the login page:\n%s", page)
	}
	cookies := resp.Cookies()
	if len(cookies) == 0 {
		t.Fatal("login page set no cookie")
	}
	req, _ := http.NewRequest("POST", base+"/login", strings.NewReader(url.Values{"_csrf": {string(m[1])}, "token": {adminToken}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, ck := range cookies {
		req.AddCookie(ck)
	}
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in through nginx: %d", resp.StatusCode)
	}
	cookies = append(cookies, resp.Cookies()...)
	session := false
	for _, ck := range cookies {
		if !ck.Secure {
			t.Errorf("cookie %s is not Secure behind an HTTPS proxy", ck.Name)
		}
		session = session || (ck.MaxAge > 0 && ck.HttpOnly && ck.Name != "")
	}
	if !session {
		t.Error("no session cookie after sign-in")
	}

	// Throttle per real client: one guesser is held back, another client
	// with a bad token still gets its plain 401.
	guesser, other := fromAddr("127.0.0.5"), fromAddr("127.0.0.6")
	bad := func(c *http.Client) int {
		req, _ := http.NewRequest("GET", base+"/api/v1/services", nil)
		req.Header.Set("Authorization", "Bearer bo_wrong-token-for-the-throttle")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	got429 := false
	for i := 0; i < 100 && !got429; i++ {
		got429 = bad(guesser) == http.StatusTooManyRequests
	}
	if !got429 {
		t.Fatal("the guesser was never throttled")
	}
	if st := bad(other); st != http.StatusUnauthorized {
		t.Fatalf("another client behind the same proxy got %d, want 401: the throttle keys on the proxy, not the client", st)
	}
}

// lockedBuffer is a bytes.Buffer safe for a process's output and the test.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// eventuallyTrue polls ok until it holds or d passes.
func eventuallyTrue(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
