package async

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"time"
)

// maxCallbackRedirects bounds the redirects a callback follows. Each one
// dials again, so the address policy applies to it as to the first.
const maxCallbackRedirects = 3

// callbackPolicy decides which addresses a callback may connect to.
//
// The check runs in the dialer's Control hook, on the address actually
// being dialled: after name resolution, and again for every redirect. A
// name that resolves to an internal address (DNS rebinding) or a redirect
// to one is thus refused like a literal address would be; a check of the
// URL when the invocation is accepted could not see either.
type callbackPolicy struct {
	// allow, when not empty, is all a callback may reach.
	allow []netip.Prefix
}

func newCallbackPolicy(allow []netip.Prefix) callbackPolicy {
	p := callbackPolicy{allow: make([]netip.Prefix, 0, len(allow))}
	for _, pfx := range allow {
		// An IPv4-mapped prefix (::ffff:10.0.0.0/104) is kept as the IPv4
		// prefix it means, since addresses are compared unmapped. An
		// invalid prefix is kept too: it matches nothing, so a list of
		// only invalid prefixes refuses everything instead of falling back
		// to the default.
		if pfx.IsValid() && pfx.Addr().Is4In6() && pfx.Bits() >= 96 {
			pfx = netip.PrefixFrom(pfx.Addr().Unmap(), pfx.Bits()-96)
		}
		if pfx.IsValid() {
			pfx = pfx.Masked()
		}
		p.allow = append(p.allow, pfx)
	}
	return p
}

// refusedError is a callback address the policy does not allow. It is not
// worth retrying: the answer will be the same.
type refusedError struct {
	addr   netip.Addr
	reason string
}

func (e *refusedError) Error() string {
	return fmt.Sprintf("callback to %s refused: %s", e.addr, e.reason)
}

// check returns a *refusedError when a callback may not connect to a.
//
// Unspecified (0.0.0.0, ::) and multicast addresses are always refused:
// no callback lives there, and connecting to 0.0.0.0 reaches the node
// itself. With no allow list everything else is allowed except where cloud
// metadata services answer (metadataPrefixes). With an allow list only
// addresses inside one of its prefixes are allowed, and a metadata address
// only by a prefix that lies within its metadata range
// (169.254.169.254/32 opens the metadata service, 0.0.0.0/0 does not).
func (p callbackPolicy) check(a netip.Addr) error {
	// Prefix.Contains never matches an address with a zone or an
	// IPv4-mapped address against an IPv4 prefix.
	a = a.Unmap().WithZone("")
	switch {
	case !a.IsValid():
		return &refusedError{a, "not an IP address"}
	case a.IsUnspecified():
		return &refusedError{a, "unspecified address"}
	case a.IsMulticast():
		return &refusedError{a, "multicast address"}
	}
	meta, isMeta := metadataPrefix(a)
	if len(p.allow) == 0 {
		if isMeta {
			return &refusedError{a, "an address where cloud metadata services answer (" + meta.String() + "); allow it explicitly with a prefix inside that range in the callback allow list"}
		}
		return nil
	}
	for _, pfx := range p.allow {
		if pfx.Contains(a) && (!isMeta || (meta.Contains(pfx.Addr()) && pfx.Bits() >= meta.Bits())) {
			return nil
		}
	}
	if isMeta {
		return &refusedError{a, "an address where cloud metadata services answer (" + meta.String() + "), and no prefix of the callback allow list inside that range covers it"}
	}
	return &refusedError{a, "not in the callback allow list"}
}

// metadataPrefixes are where cloud metadata services answer, which hold
// credentials: link-local addresses (169.254.169.254 on AWS, Google
// Cloud, Azure and most others), AWS's IPv6 endpoint, and Alibaba Cloud's.
var metadataPrefixes = []netip.Prefix{
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("fe80::/10"),
	netip.MustParsePrefix("fd00:ec2::254/128"),
	netip.MustParsePrefix("100.100.100.200/32"),
}

// metadataPrefix returns the metadata range holding a, if any.
func metadataPrefix(a netip.Addr) (netip.Prefix, bool) {
	for _, p := range metadataPrefixes {
		if p.Contains(a) {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// control is the callback dialer's Control hook: address is the IP and
// port about to be connected to.
func (p callbackPolicy) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		// Fail closed: an address we cannot read is one we cannot check.
		return &refusedError{reason: fmt.Sprintf("cannot read the dialled address %q", address)}
	}
	return p.check(ap.Addr())
}

type callbackClient struct{ http *http.Client }

// newCallbackClient returns the client callbacks are POSTed with: 10s per
// try, at most maxCallbackRedirects redirects, and every connection
// checked against the allow list (see callbackPolicy).
//
// It connects directly, never through HTTP_PROXY: through a proxy the
// dialer would see the proxy's address, not the callback's, and the check
// would be void.
func newCallbackClient(allow []netip.Prefix) callbackClient {
	policy := newCallbackPolicy(allow)
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, Control: policy.control}
	tr := &http.Transport{
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	return callbackClient{http: &http.Client{
		Timeout:   10 * time.Second,
		Transport: tr,
		CheckRedirect: func(_ *http.Request, via []*http.Request) error {
			if len(via) > maxCallbackRedirects {
				return fmt.Errorf("more than %d redirects", maxCallbackRedirects)
			}
			return nil
		},
	}}
}

// callbackLogURL is a callback URL as logs show it: scheme and host only.
// User info, query and even the path may hold credentials (webhook URLs
// often carry their secret in the path).
func callbackLogURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return "(unreadable URL)"
	}
	out := u.Scheme + "://" + u.Host
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		out += "/..."
	}
	return out
}

// callbackErr is err without the *url.Error wrapper, whose text repeats
// the whole URL.
func callbackErr(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}
