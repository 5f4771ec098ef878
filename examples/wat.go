package examples

import _ "embed"

// EchoWAT is examples/wat/echo.wasm: a hand-written module that echoes its
// event through the nimbus host ABI, with no language runtime.
//
//go:embed wat/echo.wasm
var EchoWAT []byte
