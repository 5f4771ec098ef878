// Command spin is a WASI command that never finishes when its event is
// "spin"; any other event it echoes.
package main

import (
	"io"
	"os"
)

var sink int

func main() {
	b, _ := io.ReadAll(os.Stdin)
	if string(b) != "spin" {
		os.Stdout.Write(b)
		return
	}
	for i := 0; ; i++ {
		sink = i
	}
}
