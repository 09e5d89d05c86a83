package notify

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/brownout-io/brownout"
)

// The SSRF guard. A webhook URL is an admin's input that makes the
// controller send requests from inside the network it runs in, so:
//   - its host must match the allow-list (--webhook-allow), checked when
//     the webhook is created and again before every delivery;
//   - the address actually dialled must not be loopback, private,
//     link-local, CGNAT, multicast, unspecified or reserved unless
//     AllowPrivate says so. The check runs in the dialer's Control hook on
//     the resolved IP, so a name that resolves to a public address at
//     creation and to 127.0.0.1 later (DNS rebinding) is still refused;
//   - redirects are never followed, no proxy from the environment is
//     used (it would dial on our behalf), every call has a timeout and
//     response bodies are read up to a limit.

// ErrRefusedAddress is wrapped by delivery errors when the dialled
// address is in a refused range.
var ErrRefusedAddress = errors.New("address refused")

// refusedPrefixes are ranges that netip's predicates do not name.
var refusedPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),      // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),  // CGNAT
	netip.MustParsePrefix("192.0.0.0/24"),   // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"),  // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),    // reserved, broadcast
	netip.MustParsePrefix("64:ff9b:1::/48"), // local-use NAT64
	netip.MustParsePrefix("2001:db8::/32"),  // documentation
	netip.MustParsePrefix("100::/64"),       // discard
	netip.MustParsePrefix("fec0::/10"),      // deprecated site-local
	netip.MustParsePrefix("2002::/16"),      // 6to4: embeds any IPv4
	netip.MustParsePrefix("2001::/32"),      // Teredo: embeds any IPv4
	netip.MustParsePrefix("::/96"),          // IPv4-compatible (deprecated)
	netip.MustParsePrefix("fc00::/7"),       // unique local (IsPrivate has it too)
	netip.MustParsePrefix("169.254.0.0/16"), // link-local, cloud metadata
	netip.MustParsePrefix("224.0.0.0/4"),    // multicast
	netip.MustParsePrefix("255.255.255.255/32"),
}

// nat64 is the well-known NAT64 prefix: the IPv4 address in its last
// four bytes is what is reached, so that is what is checked.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// Refused reports whether a is an address webhooks may not reach without
// AllowPrivate, and names its range.
func Refused(a netip.Addr) (bool, string) {
	a = a.Unmap()
	if nat64.Contains(a) {
		b := a.As16()
		a = netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
	}
	switch {
	case !a.IsValid():
		return true, "invalid"
	case a.IsUnspecified():
		return true, "unspecified"
	case a.IsLoopback():
		return true, "loopback"
	case a.IsPrivate():
		return true, "private"
	case a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast():
		return true, "link-local"
	case a.IsMulticast(), a.IsInterfaceLocalMulticast():
		return true, "multicast"
	}
	for _, p := range refusedPrefixes {
		if p.Contains(a) {
			return true, "reserved (" + p.String() + ")"
		}
	}
	return false, ""
}

// control is the dialer's Control hook: it sees the address about to be
// dialled, after resolution, and refuses the ranges above.
func control(allowPrivate bool) func(network, address string, _ syscall.RawConn) error {
	return func(network, address string, _ syscall.RawConn) error {
		if allowPrivate {
			return nil
		}
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("dial %s: %w: unparsable", address, ErrRefusedAddress)
		}
		if bad, why := Refused(ap.Addr()); bad {
			return fmt.Errorf("dial %s: %w: %s range (start with --webhook-allow-private to allow it)", address, ErrRefusedAddress, why)
		}
		return nil
	}
}

// newClient returns the HTTP client deliveries use.
func newClient(timeout time.Duration, allowPrivate bool) *http.Client {
	d := &net.Dialer{Timeout: timeout, Control: control(allowPrivate)}
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                 nil, // a proxy would dial for us, past the guard
			DialContext:           d.DialContext,
			TLSHandshakeTimeout:   timeout,
			ResponseHeaderTimeout: timeout,
			MaxIdleConns:          16,
			IdleConnTimeout:       90 * time.Second,
			ForceAttemptHTTP2:     true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       timeout,
	}
}

// AllowList matches webhook hosts against an admin's patterns: a host
// name ("hooks.slack.com"), a wildcard for its subdomains
// ("*.example.com", which does not match example.com itself), or an IP
// address. Matching ignores case and a trailing dot.
type AllowList []string

// ParseAllowList parses a comma-separated --webhook-allow value.
func ParseAllowList(s string) (AllowList, error) {
	var out AllowList
	for p := range strings.SplitSeq(s, ",") {
		p = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(p), "."))
		if p == "" {
			continue
		}
		host := strings.TrimPrefix(p, "*.")
		if host == "" || (strings.ContainsAny(host, "*/:@ ") && net.ParseIP(host) == nil) {
			return nil, fmt.Errorf("webhook allow-list: %q is not a host, *.domain or IP address", p)
		}
		out = append(out, p)
	}
	return out, nil
}

// Allows reports whether host (no port) is on the list.
func (l AllowList) Allows(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, p := range l {
		if suffix, ok := strings.CutPrefix(p, "*."); ok {
			if strings.HasSuffix(host, "."+suffix) {
				return true
			}
			continue
		}
		if host == p {
			return true
		}
	}
	return false
}

// checkURL validates a webhook URL at creation: a clear 422 for what is
// obviously wrong, before anything is dialled.
func (n *Notifier) checkURL(raw string) (*url.URL, error) {
	bad := func(format string, args ...any) error {
		return brownout.FieldErrorf(brownout.EINVALID, "url", format, args...)
	}
	if len(raw) > MaxURLLen {
		return nil, brownout.FieldErrorf(brownout.ETOOLARGE, "url", "is %d bytes, longer than the limit of %d", len(raw), MaxURLLen)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, bad("is not a URL")
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return nil, bad("must be an http or https URL")
	}
	if u.User != nil {
		return nil, bad("must not carry credentials; the signature authenticates deliveries")
	}
	if u.Fragment != "" || u.Opaque != "" {
		return nil, bad("must not have a fragment")
	}
	host := u.Hostname()
	if host == "" {
		return nil, bad("has no host")
	}
	if len(n.cfg.Allow) == 0 {
		return nil, bad("no webhook host is allowed: the controller's admin must list destination hosts with --webhook-allow")
	}
	if !n.cfg.Allow.Allows(host) {
		return nil, bad("host %q is not on the webhook allow-list (--webhook-allow)", host)
	}
	if ip, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil && !n.cfg.AllowPrivate {
		if bad2, why := Refused(ip); bad2 {
			return nil, bad("address %s is in a %s range, refused without --webhook-allow-private", ip, why)
		}
	}
	return u, nil
}
