// Command exit is a WASI command that fails: it reads its event, explains on
// stderr and exits with status 3.
package main

import (
	"fmt"
	"io"
	"os"
)

func main() {
	b, _ := io.ReadAll(os.Stdin)
	fmt.Fprintf(os.Stderr, "cannot handle %s\n", b)
	os.Exit(3)
}
