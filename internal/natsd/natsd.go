// Package natsd runs the embedded NATS server with JetStream that backs a
// single-node Nimbus. It owns the server's lifecycle only; what is stored on
// it belongs to package store.
package natsd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Config configures the embedded server.
type Config struct {
	// StoreDir is where JetStream keeps its files.
	StoreDir string
	// Listen is an optional "host:port" for NATS clients (other nodes, the
	// nats CLI). Empty means no TCP listener: clients connect in-process.
	Listen string
	// ServerName names the server; defaults to "nimbus".
	ServerName string
	// MaxMemory and MaxStore bound JetStream (0 = server defaults).
	MaxMemory int64
	MaxStore  int64
}

// Server is a running embedded NATS server.
type Server struct {
	srv *server.Server
}

// Start starts the server and waits until it accepts connections.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.StoreDir == "" {
		return nil, errors.New("natsd: StoreDir is required")
	}
	opts := &server.Options{
		ServerName:         cfg.ServerName,
		JetStream:          true,
		StoreDir:           cfg.StoreDir,
		JetStreamMaxMemory: cfg.MaxMemory,
		JetStreamMaxStore:  cfg.MaxStore,
		NoSigs:             true,
		NoLog:              true,
		// Large enough for the 6 MiB sync payload limit plus headers.
		MaxPayload: 8 << 20,
	}
	if opts.ServerName == "" {
		opts.ServerName = "nimbus"
	}
	if cfg.Listen == "" {
		opts.DontListen = true
	} else {
		host, port, err := net.SplitHostPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("natsd: listen address %q: %w", cfg.Listen, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("natsd: listen port %q: %w", port, err)
		}
		if p == 0 {
			p = server.RANDOM_PORT
		}
		opts.Host, opts.Port = host, p
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("natsd: %w", err)
	}
	srv.Start()
	wait := 10 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		wait = time.Until(dl)
	}
	if !srv.ReadyForConnections(wait) {
		srv.Shutdown()
		return nil, errors.New("natsd: server did not become ready (is the data directory locked by another node?)")
	}
	return &Server{srv: srv}, nil
}

// Connect opens a client connection to the server, in-process.
func (s *Server) Connect(opts ...nats.Option) (*nats.Conn, error) {
	opts = append([]nats.Option{nats.InProcessServer(s.srv), nats.Name("nimbus")}, opts...)
	return nats.Connect("", opts...)
}

// ClientURL is the server's client URL, empty when it has no listener.
func (s *Server) ClientURL() string {
	if s.srv.Addr() == nil {
		return ""
	}
	return s.srv.ClientURL()
}

// Stop shuts the server down and waits until it is gone.
func (s *Server) Stop(ctx context.Context) error {
	s.srv.Shutdown()
	done := make(chan struct{})
	go func() { s.srv.WaitForShutdown(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("natsd: shutdown: %w", ctx.Err())
	}
}
