// Package netlimit bounds what a client can hold open: concurrent TCP
// connections in total and per address, and any other per-address count
// (websocket subscribers). It also finds the real client address behind
// trusted proxies, so that caps and throttles key on the client rather
// than on the load balancer.
package netlimit

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
)

// Sentinel errors of Slots.Acquire.
var (
	// ErrTotal means the global cap is reached.
	ErrTotal = errors.New("too many concurrent connections in total")
	// ErrPerAddr means the per-address cap is reached for this address.
	ErrPerAddr = errors.New("too many concurrent connections from this address")
)

// Slots counts concurrent holders, in total and per key, against two caps.
// A cap of 0 means no cap. Safe for concurrent use.
type Slots struct {
	max, perKey int

	mu    sync.Mutex
	total int
	byKey map[string]int
}

// NewSlots returns Slots with a global cap max and a per-key cap perKey
// (0: no cap).
func NewSlots(max, perKey int) *Slots {
	return &Slots{max: max, perKey: perKey, byKey: map[string]int{}}
}

// Acquire takes a slot for key (exempt: the per-key cap does not apply)
// and returns its release, which may be called more than once. It fails
// with ErrTotal or ErrPerAddr when a cap is reached.
func (s *Slots) Acquire(key string, exempt bool) (release func(), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.max > 0 && s.total >= s.max {
		return nil, ErrTotal
	}
	if !exempt && s.perKey > 0 && s.byKey[key] >= s.perKey {
		return nil, ErrPerAddr
	}
	s.total++
	s.byKey[key]++
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.total--
			if n := s.byKey[key] - 1; n > 0 {
				s.byKey[key] = n
			} else {
				delete(s.byKey, key)
			}
		})
	}, nil
}

// Total is the number of slots held.
func (s *Slots) Total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// Proxies is the set of peers trusted to say who their client is
// (X-Forwarded-For, X-Real-IP). The zero value trusts no one.
type Proxies struct {
	nets []netip.Prefix
}

// ParseProxies reads a comma-separated list of CIDRs or addresses
// ("10.0.0.0/8, 127.0.0.1"). An empty list trusts no one.
func ParseProxies(list string) (Proxies, error) {
	var p Proxies
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return Proxies{}, fmt.Errorf("trusted proxy %q is neither an address nor a CIDR such as 10.0.0.0/8", f)
			}
			p.nets = append(p.nets, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		pfx, err := netip.ParsePrefix(f)
		if err != nil {
			return Proxies{}, fmt.Errorf("trusted proxy %q is not a CIDR such as 10.0.0.0/8", f)
		}
		if pfx.Addr().Is4In6() {
			pfx = netip.PrefixFrom(pfx.Addr().Unmap(), pfx.Bits()-96)
		}
		p.nets = append(p.nets, pfx.Masked())
	}
	return p, nil
}

// Empty reports whether no proxy is trusted.
func (p Proxies) Empty() bool { return len(p.nets) == 0 }

// Trusted reports whether addr ("ip" or "ip:port") is a trusted proxy.
func (p Proxies) Trusted(addr string) bool {
	a, ok := parseIP(addr)
	return ok && p.trusted(a)
}

func (p Proxies) trusted(a netip.Addr) bool {
	for _, n := range p.nets {
		if n.Contains(a) {
			return true
		}
	}
	return false
}

// ClientIP returns the address of the client behind r. For a peer that is
// not a trusted proxy it is the peer itself: headers from anyone else are
// ignored, since anyone can send them. For a trusted peer it is the
// right-most address in X-Forwarded-For that is not itself a trusted
// proxy (the left part of that header is whatever the client claimed),
// else X-Real-IP, else the peer.
func (p Proxies) ClientIP(r *http.Request) string {
	peer, ok := parseIP(r.RemoteAddr)
	if !ok {
		return hostOnly(r.RemoteAddr)
	}
	if !p.trusted(peer) {
		return peer.String()
	}
	hops := r.Header.Values("X-Forwarded-For")
	for i := len(hops) - 1; i >= 0; i-- {
		parts := strings.Split(hops[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			a, ok := parseIP(strings.TrimSpace(parts[j]))
			if !ok {
				return peer.String() // a hop we cannot read: trust nothing left of it
			}
			if !p.trusted(a) {
				return a.String()
			}
		}
	}
	if a, ok := parseIP(strings.TrimSpace(r.Header.Get("X-Real-IP"))); ok {
		return a.String()
	}
	return peer.String()
}

// parseIP reads "ip", "ip:port" or "[ip]:port", IPv4-mapped IPv6 as IPv4.
func parseIP(s string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	a, err := netip.ParseAddr(strings.Trim(s, "[]"))
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

func hostOnly(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}
