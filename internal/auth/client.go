package auth

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ParseTrustedProxies parses --trusted-proxy values: CIDR prefixes
// (10.0.0.0/8, fd00::/8) or single addresses (192.0.2.7).
func ParseTrustedProxies(values []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range values {
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		if p, err := netip.ParsePrefix(v); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(v)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: want an address or a CIDR prefix such as 10.0.0.0/8", v)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// maxForwardedHops bounds how many X-Forwarded-For entries are examined.
const maxForwardedHops = 32

// ClientAddr returns the address of the client that sent r: the peer's
// address, or, when the peer is one of the trusted proxies, the right-most
// X-Forwarded-For entry that is not a trusted proxy (X-Real-IP when the
// request has no X-Forwarded-For). Entries left of that one were written
// by the client and are ignored, so a client cannot choose the address it
// is counted as; a peer that is not a trusted proxy is counted as itself
// whatever headers it sends.
func (s *Service) ClientAddr(r *http.Request) string {
	return clientAddr(r, s.cfg.TrustedProxies)
}

func clientAddr(r *http.Request, trusted []netip.Prefix) string {
	host := r.RemoteAddr
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || len(trusted) == 0 || !isTrusted(peer.Unmap(), trusted) {
		return host
	}
	client := peer.Unmap()
	hops := forwardedHops(r.Header)
	if hops == nil {
		if a, err := netip.ParseAddr(strings.TrimSpace(r.Header.Get("X-Real-IP"))); err == nil {
			return a.Unmap().String()
		}
		return client.String()
	}
	for i := len(hops) - 1; i >= 0 && i >= len(hops)-maxForwardedHops; i-- {
		a, err := netip.ParseAddr(hops[i])
		if err != nil {
			// Not an address: the hops right of it were written by trusted
			// proxies, this one was not; count the request as the last
			// trusted hop rather than as anything the sender chose.
			break
		}
		client = a.Unmap()
		if !isTrusted(client, trusted) {
			break
		}
	}
	return client.String()
}

// forwardedHops returns the X-Forwarded-For entries of every such header
// in order (nil when there is none). An entry may carry a port
// ("192.0.2.1:4711", "[2001:db8::1]:4711"); it is dropped.
func forwardedHops(h http.Header) []string {
	var hops []string
	for _, v := range h.Values("X-Forwarded-For") {
		for _, e := range strings.Split(v, ",") {
			e = strings.TrimSpace(e)
			if host, _, err := net.SplitHostPort(e); err == nil {
				e = host
			}
			hops = append(hops, e)
		}
	}
	return hops
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
