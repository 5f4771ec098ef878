package apigateway_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/node"
	"github.com/nimbus-run/nimbus/internal/testutil"
)

func TestCORS(t *testing.T) {
	n := startNode(t, node.Config{})
	putAPI(t, n, &api.APIConfig{
		CORS: &api.CORSConfig{Origins: []string{"https://app.example.com"}, Methods: []string{"GET", "PUT"},
			Headers: []string{"Authorization", "Content-Type"}, Credentials: true, MaxAge: "10m"},
		Auth: map[string]api.AuthConfig{"keys": {Type: api.AuthAPIKey}},
		Routes: []api.Route{
			{Route: "PUT /items/{id}", Function: "fn", Auth: "keys"},
			{Route: "GET /open", Function: "fn"},
			{Route: "GET /own", Function: "fn", CORS: &api.CORSConfig{Origins: []string{"*"}}},
		},
	})
	preflight := func(path, origin, method, headers string) response {
		return do(t, nil, "OPTIONS", n.URL()+path, nil, "Origin", origin, "Access-Control-Request-Method", method,
			"Access-Control-Request-Headers", headers)
	}

	// Answered by the gateway, before auth, without invoking the function.
	r := preflight("/items/1", "https://app.example.com", "PUT", "authorization, content-type")
	if r.status != 204 {
		t.Fatalf("preflight: %d %s", r.status, r.body)
	}
	h := r.header
	if h.Get("Access-Control-Allow-Origin") != "https://app.example.com" || h.Get("Access-Control-Allow-Credentials") != "true" ||
		!strings.Contains(h.Get("Access-Control-Allow-Methods"), "PUT") || h.Get("Access-Control-Max-Age") != "600" ||
		!strings.Contains(strings.ToLower(h.Get("Access-Control-Allow-Headers")), "authorization") {
		t.Errorf("preflight headers = %v", h)
	}
	if h.Get(api.HeaderInvocationID) != "" {
		t.Error("preflight invoked the function")
	}
	if r := preflight("/items/1", "https://evil.example.com", "PUT", ""); r.status != 403 || r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight from another origin: %d %v", r.status, r.header)
	}
	if r := preflight("/items/1", "https://app.example.com", "DELETE", ""); r.status != 403 {
		t.Errorf("preflight for a method not allowed: %d", r.status)
	}
	// Route-level policy replaces the API's.
	if r := preflight("/own", "https://other.example.org", "GET", ""); r.status != 204 || r.header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("route policy: %d %v", r.status, r.header)
	}

	// Actual requests carry the headers, errors too (so the page can read them).
	r = do(t, nil, "GET", n.URL()+"/open", nil, "Origin", "https://app.example.com")
	if r.status != 200 || r.header.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Errorf("actual request: %d %v", r.status, r.header)
	}
	r = do(t, nil, "PUT", n.URL()+"/items/1", nil, "Origin", "https://app.example.com")
	if r.status != 401 || r.header.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Errorf("401 without CORS headers: %d %v", r.status, r.header)
	}
	r = do(t, nil, "GET", n.URL()+"/open", nil, "Origin", "https://evil.example.com")
	if r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("other origin got %q", r.header.Get("Access-Control-Allow-Origin"))
	}
}

func TestRouteRateLimitConcurrent(t *testing.T) {
	n := startNode(t, node.Config{})
	const burst = 20
	putAPI(t, n, &api.APIConfig{Routes: []api.Route{
		{Route: "GET /limited", Function: "fn", Rate: &api.RateLimit{RPS: 2, Burst: burst}},
		{Route: "GET /free", Function: "fn"},
	}})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var ok, limited, other atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 8 {
				r := do(t, client, "GET", n.URL()+"/limited", nil)
				switch {
				case r.status == 200:
					ok.Add(1)
				case r.status == 429 && r.header.Get("Retry-After") != "":
					limited.Add(1)
				default:
					other.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	// The bucket starts full and refills at 2/s while the hammer runs.
	maxOK := int64(burst) + int64(2*elapsed.Seconds()) + 1
	if ok.Load() < burst || ok.Load() > maxOK || other.Load() != 0 || ok.Load()+limited.Load() != 256 {
		t.Errorf("in %s: %d ok (want %d to %d), %d limited, %d other", elapsed, ok.Load(), burst, maxOK, limited.Load(), other.Load())
	}
	if r := do(t, client, "GET", n.URL()+"/free", nil); r.status != 200 {
		t.Errorf("another route is limited too: %d", r.status)
	}
}

func TestLimitsAndHygiene(t *testing.T) {
	var logs testutil.SyncBuffer
	n := startNode(t, node.Config{
		MaxBody: 4 << 10, MaxHeaderBytes: 4 << 10,
		Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	putAPI(t, n, &api.APIConfig{Routes: []api.Route{
		{Route: "ANY /echo/{x}", Function: "fn"},
		{Route: "GET /sleep/{ms}", Function: "fn", Timeout: "300ms"},
	}})

	t.Run("body limit", func(t *testing.T) {
		r := do(t, nil, "POST", n.URL()+"/echo/1", bytes.Repeat([]byte("a"), 8<<10))
		if code, _ := errorCode(t, r); r.status != 413 || code != api.CodePayloadTooLarge {
			t.Errorf("big body: %d %s", r.status, r.body)
		}
		// The limit bounds the event too (as Lambda's does): a body just
		// under it may not fit once wrapped.
		if r := do(t, nil, "POST", n.URL()+"/echo/1", bytes.Repeat([]byte("a"), 1<<10)); r.status != 200 {
			t.Errorf("small body: %d %s", r.status, r.body)
		}
	})
	t.Run("header limit", func(t *testing.T) {
		r := do(t, nil, "GET", n.URL()+"/echo/1", nil, "X-Big", strings.Repeat("b", 16<<10))
		if r.status != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("big header: %d", r.status)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		t0 := time.Now()
		r := do(t, nil, "GET", n.URL()+"/sleep/3000", nil)
		if code, _ := errorCode(t, r); r.status != 504 || code != api.CodeTimeout {
			t.Errorf("slow function: %d %s", r.status, r.body)
		}
		if d := time.Since(t0); d > 2*time.Second {
			t.Errorf("504 took %s for a 300ms route timeout", d)
		}
	})
	t.Run("forwarded for from an untrusted peer", func(t *testing.T) {
		var s seen
		do(t, nil, "GET", n.URL()+"/echo/1", nil, "X-Forwarded-For", "6.6.6.6").json(t, &s)
		if s.SourceIP != "127.0.0.1" || s.Headers["x-forwarded-for"] != "127.0.0.1" {
			t.Errorf("sourceIp %q x-forwarded-for %q: a client's claim was believed", s.SourceIP, s.Headers["x-forwarded-for"])
		}
	})
	t.Run("request id and access log", func(t *testing.T) {
		r := do(t, nil, "GET", n.URL()+"/echo/7", nil)
		id := r.header.Get("X-Request-Id")
		if len(id) != 32 {
			t.Fatalf("X-Request-Id = %q", id)
		}
		if r := do(t, nil, "GET", n.URL()+"/healthz", nil, "X-Request-Id", `bad "id"`); r.header.Get("X-Request-Id") == `bad "id"` || r.header.Get("X-Request-Id") == "" {
			t.Errorf("unsafe request id echoed or none given: %q", r.header.Get("X-Request-Id"))
		}
		inv := r.header.Get(api.HeaderInvocationID)
		var line map[string]any
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, id) {
				json.Unmarshal([]byte(l), &line)
			}
		}
		if line["msg"] != "access" || line["route"] != "ANY /echo/{x}" || line["status"] != float64(200) ||
			line["invocation_id"] != inv || line["latency_ms"] == nil || line["method"] != "GET" {
			t.Errorf("access log line = %v (invocation %s)", line, inv)
		}
	})
}

func TestTrustedProxy(t *testing.T) {
	n := startNode(t, node.Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	putAPI(t, n, &api.APIConfig{Routes: []api.Route{{Route: "GET /ip", Function: "fn"}}})
	var s seen
	do(t, nil, "GET", n.URL()+"/ip", nil, "X-Forwarded-For", "203.0.113.9, 10.0.0.1").json(t, &s)
	// 10.0.0.1 is not trusted, so it is the client as far as we can tell.
	if s.SourceIP != "10.0.0.1" || s.Headers["x-forwarded-for"] != "203.0.113.9, 10.0.0.1, 127.0.0.1" {
		t.Errorf("sourceIp %q x-forwarded-for %q", s.SourceIP, s.Headers["x-forwarded-for"])
	}
}

// selfSigned writes a certificate for api.example.com, *.example.com and
// 127.0.0.1 and returns its paths and a pool that trusts it.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "api.example.com"},
		DNSNames: []string{"api.example.com", "*.example.com", "localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestTLSHostsAndAPIListener(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	n := startNodeWith(t, node.Config{TLSCert: certFile, TLSKey: keyFile, APIListen: "127.0.0.1:0"}, client)
	if !strings.HasPrefix(n.URL(), "https://") || n.APIURL() == n.URL() {
		t.Fatalf("URL %s, APIURL %s", n.URL(), n.APIURL())
	}
	putAPIWith(t, n, client, &api.APIConfig{Routes: []api.Route{
		{Route: "GET /who", Function: "fn", Host: "api.example.com"},
		{Route: "GET /wild", Function: "fn", Host: "*.example.com"},
		{Route: "GET /any", Function: "fn"},
	}})

	r := do(t, client, "GET", n.APIURL()+"/who", nil, "Host", "api.example.com")
	if r.status != 200 || r.proto != "HTTP/2.0" {
		t.Fatalf("host route over TLS: %d %s %s", r.status, r.proto, r.body)
	}
	var s seen
	r.json(t, &s)
	if s.Domain != "api.example.com" || s.Headers["x-forwarded-proto"] != "https" {
		t.Errorf("event domain %q proto %q", s.Domain, s.Headers["x-forwarded-proto"])
	}
	if r := do(t, client, "GET", n.APIURL()+"/who", nil, "Host", "other.example.org"); r.status != 404 {
		t.Errorf("host route on another host: %d", r.status)
	}
	if r := do(t, client, "GET", n.APIURL()+"/wild", nil, "Host", "eu.example.com"); r.status != 200 {
		t.Errorf("wildcard host: %d", r.status)
	}
	if r := do(t, client, "GET", n.APIURL()+"/any", nil, "Host", "x.test"); r.status != 200 {
		t.Errorf("hostless route: %d", r.status)
	}
	// With --api-listen, the main listener serves no user routes, and the
	// API listener serves nothing of Nimbus's.
	if r := do(t, client, "GET", n.URL()+"/any", nil); r.status != 404 {
		t.Errorf("user route on the main listener: %d %s", r.status, r.body)
	}
	if r := do(t, client, "GET", n.URL()+"/healthz", nil); r.status != 200 || r.proto != "HTTP/2.0" {
		t.Errorf("main listener over TLS: %d %s", r.status, r.proto)
	}
	if r := do(t, client, "GET", n.APIURL()+"/api/v1/routes", nil); r.status != 404 {
		t.Errorf("management API on the API listener: %d", r.status)
	}
}
