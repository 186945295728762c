package auth

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestClientAddr(t *testing.T) {
	trusted, err := ParseTrustedProxies([]string{"10.0.0.0/8", "192.0.2.7", "fd00::/8"})
	if err != nil {
		t.Fatal(err)
	}
	many := strings.TrimSuffix(strings.Repeat("10.1.1.1, ", 40), ", ")
	tests := []struct {
		name, peer string
		hdr        map[string][]string
		trusted    []netip.Prefix
		want       string
	}{
		{"no proxies configured", "198.51.100.1:5", map[string][]string{"X-Forwarded-For": {"203.0.113.9"}}, nil, "198.51.100.1"},
		{"untrusted peer's XFF ignored", "198.51.100.1:5", map[string][]string{"X-Forwarded-For": {"203.0.113.9"}}, trusted, "198.51.100.1"},
		{"untrusted peer's X-Real-IP ignored", "198.51.100.1:5", map[string][]string{"X-Real-Ip": {"203.0.113.9"}}, trusted, "198.51.100.1"},
		{"trusted peer, one hop", "10.0.0.5:5", map[string][]string{"X-Forwarded-For": {"203.0.113.9"}}, trusted, "203.0.113.9"},
		{"client-written entries left of the hop ignored", "10.0.0.5:5", map[string][]string{"X-Forwarded-For": {"1.1.1.1, 2.2.2.2, 203.0.113.9"}}, trusted, "203.0.113.9"},
		{"two trusted proxies", "10.0.0.5:5", map[string][]string{"X-Forwarded-For": {"203.0.113.9, 192.0.2.7"}}, trusted, "203.0.113.9"},
		{"several headers in order", "10.0.0.5:5", map[string][]string{"X-Forwarded-For": {"1.1.1.1", "203.0.113.9"}}, trusted, "203.0.113.9"},
		{"entry with port", "10.0.0.5:5", map[string][]string{"X-Forwarded-For": {"203.0.113.9:4711"}}, trusted, "203.0.113.9"},
		{"IPv6 entry with port", "10.0.0.5:5", map[string][]string{"X-Forwarded-For": {"[2001:db8::1]:4711"}}, trusted, "2001:db8::1"},
		{"IPv4-mapped entry", "10.0.0.5:5", map[string][]string{"X-Forwarded-For": {"::ffff:203.0.113.9"}}, trusted, "203.0.113.9"},
		{"IPv4-mapped trusted peer", "[::ffff:10.0.0.5]:5", map[string][]string{"X-Forwarded-For": {"203.0.113.9"}}, trusted, "203.0.113.9"},
		{"IPv6 trusted peer", "[fd00::2]:5", map[string][]string{"X-Forwarded-For": {"2001:db8::7"}}, trusted, "2001:db8::7"},
		{"garbage left of a trusted hop", "10.0.0.5:5", map[string][]string{"X-Forwarded-For": {"evil, 10.0.0.9"}}, trusted, "10.0.0.9"},
		{"garbage right-most", "10.0.0.5:5", map[string][]string{"X-Forwarded-For": {"203.0.113.9, <script>"}}, trusted, "10.0.0.5"},
		{"empty header", "10.0.0.5:5", map[string][]string{"X-Forwarded-For": {""}}, trusted, "10.0.0.5"},
		{"all hops trusted", "10.0.0.5:5", map[string][]string{"X-Forwarded-For": {"10.0.0.1, 10.0.0.2"}}, trusted, "10.0.0.1"},
		{"hop limit", "10.0.0.5:5", map[string][]string{"X-Forwarded-For": {"203.0.113.9, " + many}}, trusted, "10.1.1.1"},
		{"X-Real-IP from a trusted peer", "10.0.0.5:5", map[string][]string{"X-Real-Ip": {"203.0.113.9"}}, trusted, "203.0.113.9"},
		{"bad X-Real-IP", "10.0.0.5:5", map[string][]string{"X-Real-Ip": {"not an address"}}, trusted, "10.0.0.5"},
		{"XFF wins over X-Real-IP", "10.0.0.5:5", map[string][]string{"X-Forwarded-For": {"203.0.113.9"}, "X-Real-Ip": {"1.1.1.1"}}, trusted, "203.0.113.9"},
		{"peer that is not an address", "@", map[string][]string{"X-Forwarded-For": {"203.0.113.9"}}, trusted, "@"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &http.Request{RemoteAddr: tt.peer, Header: http.Header(tt.hdr)}
			if got := clientAddr(r, tt.trusted); got != tt.want {
				t.Errorf("clientAddr = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseTrustedProxies(t *testing.T) {
	got, err := ParseTrustedProxies([]string{" 10.1.2.3/8 ", "192.0.2.7", "2001:db8::/32", "::ffff:192.0.2.8", ""})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32", "192.0.2.8/32"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("%d: %s, want %s", i, got[i], want[i])
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "example.com", "10.0.0", "*", "10.0.0.1-10.0.0.9"} {
		if _, err := ParseTrustedProxies([]string{bad}); err == nil {
			t.Errorf("ParseTrustedProxies(%q) accepted", bad)
		}
	}
}

// FuzzClientAddr: whatever a client puts in X-Forwarded-For and X-Real-IP,
// the address a request is counted as is the peer's unless the peer is a
// trusted proxy, and otherwise a well-formed address.
func FuzzClientAddr(f *testing.F) {
	for _, s := range []string{"203.0.113.9", "1.1.1.1, 10.0.0.9", "[2001:db8::1]:80", "", ",,,", "10.0.0.1, garbage", "::ffff:1.2.3.4%eth0"} {
		f.Add(s, s, true)
	}
	trusted, _ := ParseTrustedProxies([]string{"10.0.0.0/8"})
	f.Fuzz(func(t *testing.T, xff, realIP string, fromProxy bool) {
		peer := "198.51.100.1:1"
		if fromProxy {
			peer = "10.0.0.5:1"
		}
		r := &http.Request{RemoteAddr: peer, Header: http.Header{"X-Forwarded-For": {xff}, "X-Real-Ip": {realIP}}}
		got := clientAddr(r, trusted)
		if !fromProxy && got != "198.51.100.1" {
			t.Fatalf("untrusted peer counted as %q", got)
		}
		if _, err := netip.ParseAddr(got); err != nil {
			t.Fatalf("client address %q is not an address", got)
		}
	})
}

func TestAccessCacheBounded(t *testing.T) {
	c := newAccessCache(8)
	now := time.Unix(1000, 0)
	for i := range 100 {
		var k [32]byte
		k[0], k[1] = byte(i), byte(i>>8)
		c.put(k, &accessEntry{until: now.Add(time.Second)}, now)
		if n := len(c.entries); n > 8 {
			t.Fatalf("%d entries in a cache of 8", n)
		}
	}
}
