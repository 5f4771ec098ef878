// Command echo-wasi is a plain WASI command: it copies stdin (the event) to
// stdout (the result). Any language that targets wasip1 can do the same; a
// fresh instance serves each invocation.
package main

import (
	"fmt"
	"io"
	"os"
)

func main() {
	if _, err := io.Copy(os.Stdout, os.Stdin); err != nil {
		fmt.Fprintln(os.Stderr, "echo:", err)
		os.Exit(1)
	}
}
