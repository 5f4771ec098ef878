package async

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

func TestCallbackPolicyCheck(t *testing.T) {
	prefixes := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out
	}
	tests := []struct {
		name  string
		allow []netip.Prefix
		addr  string
		ok    bool
	}{
		// The default: everything but link-local, unspecified, multicast.
		{"default metadata v4", nil, "169.254.169.254", false},
		{"default link-local v4", nil, "169.254.1.1", false},
		{"default link-local v6", nil, "fe80::1", false},
		{"default link-local v6 with zone", nil, "fe80::1%eth0", false},
		{"default metadata v4-mapped", nil, "::ffff:169.254.169.254", false},
		{"default AWS metadata v6", nil, "fd00:ec2::254", false},
		{"default Alibaba metadata", nil, "100.100.100.200", false},
		{"default next to AWS metadata v6", nil, "fd00:ec2::253", true},
		{"default unspecified v4", nil, "0.0.0.0", false},
		{"default unspecified v6", nil, "::", false},
		{"default multicast v4", nil, "224.0.0.1", false},
		{"default multicast v6", nil, "ff02::1", false},
		{"default public v4", nil, "203.0.113.7", true},
		{"default public v6", nil, "2001:db8::7", true},
		{"default loopback", nil, "127.0.0.1", true},
		{"default loopback v6", nil, "::1", true},
		{"default private", nil, "10.1.2.3", true},
		{"default v4-mapped public", nil, "::ffff:203.0.113.7", true},

		// An allow list: only what it covers.
		{"listed v4", prefixes("10.0.0.0/8"), "10.1.2.3", true},
		{"unlisted v4", prefixes("10.0.0.0/8"), "11.1.2.3", false},
		{"unlisted loopback", prefixes("10.0.0.0/8"), "127.0.0.1", false},
		{"listed loopback", prefixes("10.0.0.0/8", "127.0.0.0/8"), "127.0.0.1", true},
		{"single address", prefixes("192.0.2.7/32"), "192.0.2.7", true},
		{"next to single address", prefixes("192.0.2.7/32"), "192.0.2.8", false},
		{"listed v6", prefixes("2001:db8::/32"), "2001:db8::7", true},
		{"v4 list, v6 address", prefixes("10.0.0.0/8"), "2001:db8::7", false},
		{"v4-mapped address, v4 list", prefixes("10.0.0.0/8"), "::ffff:10.1.2.3", true},
		{"v4-mapped list, v4 address", prefixes("::ffff:10.0.0.0/104"), "10.1.2.3", true},
		{"everything v4 still not link-local", prefixes("0.0.0.0/0"), "169.254.169.254", false},
		{"everything v6 still not link-local", prefixes("::/0"), "fe80::1", false},
		{"everything v4 allows public", prefixes("0.0.0.0/0"), "203.0.113.7", true},
		{"everything v4 still not unspecified", prefixes("0.0.0.0/0"), "0.0.0.0", false},
		{"everything v4 still not multicast", prefixes("0.0.0.0/0"), "224.0.0.1", false},
		{"link-local listed explicitly", prefixes("169.254.169.254/32"), "169.254.169.254", true},
		{"link-local range listed", prefixes("169.254.0.0/16"), "169.254.1.1", true},
		{"link-local v6 listed", prefixes("fe80::/10"), "fe80::1%eth0", true},
		{"private v6 listed, AWS metadata still not", prefixes("fd00::/8"), "fd00:ec2::254", false},
		{"AWS metadata v6 listed", prefixes("fd00:ec2::254/128"), "fd00:ec2::254", true},
		{"CGNAT listed, Alibaba metadata still not", prefixes("100.64.0.0/10"), "100.100.100.200", false},
		{"invalid prefix only refuses all", []netip.Prefix{{}}, "203.0.113.7", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := newCallbackPolicy(tc.allow).check(netip.MustParseAddr(tc.addr))
			if got := err == nil; got != tc.ok {
				t.Errorf("check(%s) with allow %v = %v; want allowed %v", tc.addr, tc.allow, err, tc.ok)
			}
			if err != nil {
				var re *refusedError
				if !errors.As(err, &re) || re.reason == "" {
					t.Errorf("check(%s) = %#v; want a *refusedError with a reason", tc.addr, err)
				}
			}
		})
	}
}

func TestCallbackPolicyControl(t *testing.T) {
	p := newCallbackPolicy(nil)
	tests := []struct {
		address string
		ok      bool
	}{
		{"169.254.169.254:80", false},
		{"[fe80::1%eth0]:80", false},
		{"127.0.0.1:8080", true},
		{"[::1]:443", true},
		{"not-an-address", false},
	}
	for _, tc := range tests {
		t.Run(tc.address, func(t *testing.T) {
			err := p.control("tcp", tc.address, nil)
			if got := err == nil; got != tc.ok {
				t.Errorf("control(%q) = %v; want allowed %v", tc.address, err, tc.ok)
			}
		})
	}
}

// TestCallbackClientRefusesAtConnect: the refusal comes from the dialer,
// so it holds for names that resolve to a refused address and for
// redirects, and the client reports it as a *refusedError.
func TestCallbackClientRefusesAtConnect(t *testing.T) {
	var hits atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer target.Close()
	port := target.Listener.Addr().(*net.TCPAddr).Port
	allowNone := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}

	t.Run("literal address", func(t *testing.T) {
		c := newCallbackClient(allowNone)
		_, err := c.http.Post(target.URL, "text/plain", strings.NewReader("x"))
		if _, ok := errors.AsType[*refusedError](err); !ok {
			t.Errorf("POST %s = %v; want a *refusedError", target.URL, err)
		}
	})
	t.Run("name", func(t *testing.T) {
		// localhost resolves to loopback addresses, none of which is allowed.
		c := newCallbackClient(allowNone)
		u := "http://localhost:" + strconv.Itoa(port)
		_, err := c.http.Post(u, "text/plain", strings.NewReader("x"))
		if _, ok := errors.AsType[*refusedError](err); !ok {
			t.Errorf("POST %s = %v; want a *refusedError", u, err)
		}
	})
	if got := hits.Load(); got != 0 {
		t.Errorf("target got %d requests; want none", got)
	}

	t.Run("redirect", func(t *testing.T) {
		// Only the redirector's address is allowed; the target it sends
		// the callback to is not.
		ln, err := net.Listen("tcp", "127.0.0.2:0")
		if err != nil {
			t.Skipf("no 127.0.0.2 to listen on: %v", err)
		}
		redirector := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target.URL, http.StatusTemporaryRedirect)
		}))
		redirector.Listener.Close()
		redirector.Listener = ln
		redirector.Start()
		defer redirector.Close()

		c := newCallbackClient([]netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")})
		_, err = c.http.Post(redirector.URL, "text/plain", strings.NewReader("x"))
		if _, ok := errors.AsType[*refusedError](err); !ok {
			t.Errorf("POST %s redirected to %s = %v; want a *refusedError", redirector.URL, target.URL, err)
		}
		if got := hits.Load(); got != 0 {
			t.Errorf("target got %d requests through the redirect; want none", got)
		}
	})

	t.Run("redirect loop", func(t *testing.T) {
		var loops atomic.Int32
		loop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			loops.Add(1)
			http.Redirect(w, r, r.URL.Path, http.StatusTemporaryRedirect)
		}))
		defer loop.Close()
		c := newCallbackClient(nil)
		_, err := c.http.Post(loop.URL, "text/plain", strings.NewReader("x"))
		if err == nil || !strings.Contains(err.Error(), "redirects") {
			t.Errorf("POST to a redirect loop = %v; want a too-many-redirects error", err)
		}
		if got, want := loops.Load(), int32(1+maxCallbackRedirects); got != want {
			t.Errorf("redirect loop served %d requests; want %d", got, want)
		}
	})
}

func TestCallbackLogURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://example.com", "https://example.com"},
		{"https://example.com/", "https://example.com"},
		{"https://user:secret@example.com:8443/hooks/T0/B0/xyz?token=abc", "https://example.com:8443/..."},
		{"http://169.254.169.254/latest/meta-data/", "http://169.254.169.254/..."},
		{"::", "(unreadable URL)"},
	}
	for _, tc := range tests {
		if got := callbackLogURL(tc.in); got != tc.want {
			t.Errorf("callbackLogURL(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
}
