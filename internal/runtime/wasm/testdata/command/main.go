// Command command is the WASI-command fixture of the wasm runtime's tests.
// Its event chooses: "spin" never finishes, "exit:<text>" writes text to
// stderr and exits with status 3, anything else is echoed to stdout.
package main

import (
	"fmt"
	"io"
	"os"
	"strings"
)

var sink int

func main() {
	b, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "read stdin:", err)
		os.Exit(1)
	}
	event := string(b)
	switch {
	case event == "spin":
		for i := 0; ; i++ {
			sink = i
		}
	case strings.HasPrefix(event, "exit:"):
		fmt.Fprintln(os.Stderr, strings.TrimPrefix(event, "exit:"))
		os.Exit(3)
	}
	os.Stdout.Write(b)
}
