//go:build !unix

package wasm

import "time"

func processCPU() time.Duration { return 0 }

func minorFaults() int64 { return 0 }
