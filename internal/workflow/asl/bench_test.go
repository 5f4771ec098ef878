package asl_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nimbus-run/nimbus/internal/workflow/asl"
)

// passChain builds a machine of n Pass states in a row.
func passChain(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"StartAt":"S0","States":{`)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		if i == n-1 {
			fmt.Fprintf(&b, `"S%d":{"Type":"Pass","End":true}`, i)
		} else {
			fmt.Fprintf(&b, `"S%d":{"Type":"Pass","Next":"S%d"}`, i, i+1)
		}
	}
	b.WriteString(`}}`)
	return []byte(b.String())
}

// BenchmarkPassChain100 measures state transitions per second through a
// 100-state Pass chain, in memory, with history recording on.
func BenchmarkPassChain100(b *testing.B) {
	m, err := asl.Parse(passChain(100))
	if err != nil {
		b.Fatal(err)
	}
	input := json.RawMessage(`{"order":{"id":"o-1","items":[1,2,3],"total":12.5}}`)
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ex, err := asl.Run(context.Background(), m, input, asl.RunOptions{Context: asl.ExecContext{ExecutionID: "x", StartTime: start}})
		if err != nil || ex.Status() != asl.StatusSucceeded {
			b.Fatalf("run: %v %v", err, ex.Error())
		}
		_ = ex.Events()
	}
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "transitions/s")
}

// BenchmarkPassChain100NoHistory is the same run without history events, as
// Express workflows run.
func BenchmarkPassChain100NoHistory(b *testing.B) {
	m, err := asl.Parse(passChain(100))
	if err != nil {
		b.Fatal(err)
	}
	input := json.RawMessage(`{"order":{"id":"o-1","items":[1,2,3],"total":12.5}}`)
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ex, err := asl.Run(context.Background(), m, input, asl.RunOptions{Context: asl.ExecContext{ExecutionID: "x", StartTime: start, NoHistory: true}})
		if err != nil || ex.Status() != asl.StatusSucceeded {
			b.Fatalf("run: %v %v", err, ex.Error())
		}
	}
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "transitions/s")
}
