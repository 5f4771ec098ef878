// Command hello is the smallest Nimbus function: {"name":"Ada"} ->
// {"message":"Hello, Ada!"}. Build it for the wasm runtime with
//
//	GOOS=wasip1 GOARCH=wasm go build -o hello.wasm ./examples/hello
//
// or natively for the process runtime (it then speaks the Lambda Runtime API).
package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/nimbus-run/nimbus/sdk"
)

type request struct {
	Name string `json:"name"`
}

type response struct {
	Message string `json:"message"`
}

func hello(ctx context.Context, event json.RawMessage) (any, error) {
	var req request
	if len(event) > 0 {
		if err := json.Unmarshal(event, &req); err != nil {
			return nil, &sdk.Error{Type: "InvalidEvent", Message: "event must be a JSON object like {\"name\":\"Ada\"}: " + err.Error()}
		}
	}
	if req.Name == "" {
		req.Name = "World"
	}
	return response{Message: fmt.Sprintf("Hello, %s!", req.Name)}, nil
}

func main() { sdk.Start(hello) }
