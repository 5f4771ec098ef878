// Command sandbox probes what the sandbox allows: {"mode":"file"} opens
// /etc/passwd, "write" creates a file, "dial" opens a TCP connection,
// "listen" listens on a port, "env" returns its environment. Each probe that
// is denied returns the error it got.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"

	"github.com/nimbus-run/nimbus/sdk"
)

func main() {
	sdk.Start(func(ctx context.Context, event json.RawMessage) (any, error) {
		var req struct{ Mode string }
		_ = json.Unmarshal(event, &req)
		switch req.Mode {
		case "file":
			b, err := os.ReadFile("/etc/passwd")
			if err != nil {
				return nil, &sdk.Error{Type: "Denied", Message: err.Error()}
			}
			return string(b), nil
		case "write":
			if err := os.WriteFile("/tmp/nimbus-sandbox-probe", []byte("x"), 0o600); err != nil {
				return nil, &sdk.Error{Type: "Denied", Message: err.Error()}
			}
			return "written", nil
		case "dial":
			c, err := net.Dial("tcp", "127.0.0.1:22")
			if err != nil {
				return nil, &sdk.Error{Type: "Denied", Message: err.Error()}
			}
			c.Close()
			return "connected", nil
		case "listen":
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return nil, &sdk.Error{Type: "Denied", Message: err.Error()}
			}
			l.Close()
			return "listening", nil
		case "env":
			return os.Environ(), nil
		}
		return nil, fmt.Errorf("unknown mode %q", req.Mode)
	})
}
