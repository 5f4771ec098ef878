# The single entry point for building and checking Nimbus.
GO ?= go

.PHONY: build test race bench load lint check fuzz run

build:
	$(GO) build -o bin/nimbus ./cmd/nimbus

# The README's test command.
test:
	$(GO) test ./...

race:
	$(GO) test -race -timeout 30m ./...   # internal/node alone takes about 10 minutes under -race on 2 cores

bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s ./internal/...

# The load benchmark (see README: Benchmarks).
load:
	$(GO) run ./bench/load

fuzz:  # every fuzzer, 30 s each (about 17 minutes)
	$(GO) test -run '^$$' -fuzz '^FuzzCompile$$' -fuzztime 30s ./internal/apigateway
	$(GO) test -run '^$$' -fuzz '^FuzzParseRequest$$' -fuzztime 30s ./internal/apitext
	$(GO) test -run '^$$' -fuzz '^FuzzCheckConditions$$' -fuzztime 30s ./internal/data
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeToken$$' -fuzztime 30s ./internal/data
	$(GO) test -run '^$$' -fuzz '^FuzzKeyOrder$$' -fuzztime 30s ./internal/data
	$(GO) test -run '^$$' -fuzz '^FuzzParseAck$$' -fuzztime 30s ./internal/data
	$(GO) test -run '^$$' -fuzz '^FuzzParseCondition$$' -fuzztime 30s ./internal/data
	$(GO) test -run '^$$' -fuzz '^FuzzParseRange$$' -fuzztime 30s ./internal/data
	$(GO) test -run '^$$' -fuzz '^FuzzTopLevel$$' -fuzztime 30s ./internal/data
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeKeyRequest$$' -fuzztime 30s ./internal/data/dataapi
	$(GO) test -run '^$$' -fuzz '^FuzzDecodePutItem$$' -fuzztime 30s ./internal/data/dataapi
	$(GO) test -run '^$$' -fuzz '^FuzzFromHTTP$$' -fuzztime 30s ./internal/events/cloudevent
	$(GO) test -run '^$$' -fuzz '^FuzzCompile$$' -fuzztime 30s ./internal/events/pattern
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime 30s ./internal/events/pattern
	$(GO) test -run '^$$' -fuzz '^FuzzMatch$$' -fuzztime 30s ./internal/events/pattern
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime 30s ./internal/events/schedule
	$(GO) test -run '^$$' -fuzz '^FuzzVerify$$' -fuzztime 30s ./internal/events/webhook
	$(GO) test -run '^$$' -fuzz '^FuzzSpec$$' -fuzztime 30s ./internal/function
	$(GO) test -run '^$$' -fuzz '^FuzzWriteResponse$$' -fuzztime 30s ./internal/gateway/apigw
	$(GO) test -run '^$$' -fuzz '^FuzzHandle$$' -fuzztime 30s ./internal/gateway/cors
	$(GO) test -run '^$$' -fuzz '^FuzzMatch$$' -fuzztime 30s ./internal/gateway/route
	$(GO) test -run '^$$' -fuzz '^FuzzParseTemplate$$' -fuzztime 30s ./internal/gateway/route
	$(GO) test -run '^$$' -fuzz '^FuzzMembers$$' -fuzztime 30s ./internal/jsonscan
	$(GO) test -run '^$$' -fuzz '^FuzzMembersAnyInput$$' -fuzztime 30s ./internal/jsonscan
	$(GO) test -run '^$$' -fuzz '^FuzzInvokeAPI$$' -fuzztime 30s ./internal/lambdaapi
	$(GO) test -run '^$$' -fuzz '^FuzzRuntimeAPI$$' -fuzztime 30s ./internal/lambdaapi
	$(GO) test -run '^$$' -fuzz '^FuzzRuntimeConn$$' -fuzztime 30s ./internal/lambdaapi
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime 30s ./internal/manifest
	$(GO) test -run '^$$' -fuzz '^FuzzInstrumentLoops$$' -fuzztime 30s ./internal/runtime/wasm
	$(GO) test -run '^$$' -fuzz '^FuzzParseAuthorization$$' -fuzztime 30s ./internal/sigv4
	$(GO) test -run '^$$' -fuzz '^FuzzStoredAndAPIInput$$' -fuzztime 30s ./internal/workflow
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime 30s ./internal/workflow/asl
	$(GO) test -run '^$$' -fuzz '^FuzzPath$$' -fuzztime 30s ./internal/workflow/asl

lint:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)

check: lint
	$(GO) mod tidy && git diff --exit-code go.mod go.sum

run:
	$(GO) run ./cmd/nimbus up --demo
