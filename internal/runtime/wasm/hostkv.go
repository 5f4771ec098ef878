package wasm

import (
	"context"
	"encoding/binary"
	"errors"
	"net/http"
	"time"

	"github.com/tetratelabs/wazero/api"

	wire "github.com/nimbus-run/nimbus/api"
)

// Table calls (docs/wasm-abi.md, "Table calls"): nimbus.kv_get and
// nimbus.kv_put are api_v2's two most frequent data calls without its
// envelope. Through api_v2 a get cost a Go guest some 40 µs and the host
// 16 µs around a 2 µs read (go test -bench SDKDataCall ./internal/runtime/wasm):
// the guest builds and parses text envelopes and JSON answers, which Go
// compiled to wasm runs 20 to 40 times slower than native code, and the
// host builds an http.Request and routes it. Here the guest passes the
// table's name and the key or item as they are, and reads a fixed binary
// head before the item. The node serves them with the same service calls,
// permission checks and error answers as its HTTP API (Config.Tables).

// Tables serves one function's table calls with its permissions.
type Tables interface {
	GetItem(ctx context.Context, table string, key []byte) (item []byte, rev uint64, updated time.Time, err error)
	PutItem(ctx context.Context, table string, item []byte, ifAbsent bool, ifRevision uint64) (rev uint64, err error)
	// ErrorAnswer is the status and JSON body the node's HTTP API answers
	// err with.
	ErrorAnswer(err error) (status int, body []byte)
}

// tableHead is the size of a table answer's fixed head: the status
// (uint16), then for a get the revision (uint64) and the update time (Unix
// nanoseconds, int64), for a put the revision; little-endian.
const (
	tableStatusBytes = 2
	tableGetHead     = tableStatusBytes + 16
	tablePutHead     = tableStatusBytes + 8
)

// kv_get(table_ptr, table_len, key_ptr, key_len, buf, buf_len) -> size:
// the item with the key (a JSON object of the key attributes). The answer
// is status 200, revision, update time and the item's JSON; or another
// status and the API's JSON error body. Written to buf when it fits, else
// kept for api_result.
func hostKVGet(ctx context.Context, mod api.Module, stack []uint64) {
	s := sdkOf(ctx)
	table := string(readAt(mod, "kv_get", stack[0], stack[1]))
	key := readAt(mod, "kv_get", stack[2], stack[3])
	var out []byte
	if s.tables == nil {
		out = s.tableError(errTablesUnavailable)
	} else {
		cctx, cancel := s.apiContext()
		item, rev, updated, err := s.tables.GetItem(cctx, table, key)
		cancel()
		if err != nil {
			out = s.tableError(err)
		} else {
			out = make([]byte, tableGetHead, tableGetHead+len(item))
			binary.LittleEndian.PutUint16(out, http.StatusOK)
			binary.LittleEndian.PutUint64(out[2:], rev)
			if !updated.IsZero() {
				binary.LittleEndian.PutUint64(out[10:], uint64(updated.UnixNano()))
			}
			out = append(out, item...)
		}
	}
	s.keepAnswerAt(mod, "kv_get", stack[4], stack[5], stack, out)
}

// kv_put(table_ptr, table_len, item_ptr, item_len, if_revision i64,
// if_absent i32, buf, buf_len) -> size: stores the item (a JSON object
// holding the key attributes), only when no item has its key if
// if_absent is not 0, only over revision if_revision when that is not 0. The
// answer is status 200 and the new revision, or as kv_get's.
func hostKVPut(ctx context.Context, mod api.Module, stack []uint64) {
	s := sdkOf(ctx)
	table := string(readAt(mod, "kv_put", stack[0], stack[1]))
	// The item is guest memory, which the guest reuses; the service may
	// keep it (its cache).
	item := append([]byte(nil), readAt(mod, "kv_put", stack[2], stack[3])...)
	ifRevision, ifAbsent := stack[4], api.DecodeU32(stack[5]) != 0
	var out []byte
	if s.tables == nil {
		out = s.tableError(errTablesUnavailable)
	} else {
		cctx, cancel := s.apiContext()
		rev, err := s.tables.PutItem(cctx, table, item, ifAbsent, ifRevision)
		cancel()
		if err != nil {
			out = s.tableError(err)
		} else {
			out = make([]byte, tablePutHead)
			binary.LittleEndian.PutUint16(out, http.StatusOK)
			binary.LittleEndian.PutUint64(out[2:], rev)
		}
	}
	s.keepAnswerAt(mod, "kv_put", stack[6], stack[7], stack, out)
}

var errTablesUnavailable = errors.New("nimbus.kv: this node does not serve data calls")

// tableError is err's answer: its status, then the API's JSON error body.
func (s *sdkInstance) tableError(err error) []byte {
	status, body := http.StatusServiceUnavailable, []byte(nil)
	if s.tables != nil {
		status, body = s.tables.ErrorAnswer(err)
	} else {
		body = apiError(status, wire.CodeUnavailable, err.Error()).Body
	}
	return append(binary.LittleEndian.AppendUint16(nil, uint16(status)), body...)
}
