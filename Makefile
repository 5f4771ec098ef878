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

# Every fuzzer as package:Fuzzer (make fuzz runs each for 30 s, about 17 minutes).
FUZZERS = \
	./internal/apigateway:FuzzCompile \
	./internal/apitext:FuzzParseRequest \
	./internal/data:FuzzCheckConditions \
	./internal/data:FuzzDecodeToken \
	./internal/data:FuzzKeyOrder \
	./internal/data:FuzzParseAck \
	./internal/data:FuzzParseCondition \
	./internal/data:FuzzParseRange \
	./internal/data:FuzzTopLevel \
	./internal/data/dataapi:FuzzDecodeKeyRequest \
	./internal/data/dataapi:FuzzDecodePutItem \
	./internal/events/cloudevent:FuzzFromHTTP \
	./internal/events/pattern:FuzzCompile \
	./internal/events/pattern:FuzzDecode \
	./internal/events/pattern:FuzzMatch \
	./internal/events/schedule:FuzzParse \
	./internal/events/webhook:FuzzVerify \
	./internal/function:FuzzSpec \
	./internal/gateway/apigw:FuzzWriteResponse \
	./internal/gateway/cors:FuzzHandle \
	./internal/gateway/route:FuzzMatch \
	./internal/gateway/route:FuzzParseTemplate \
	./internal/jsonscan:FuzzMembers \
	./internal/jsonscan:FuzzMembersAnyInput \
	./internal/lambdaapi:FuzzInvokeAPI \
	./internal/lambdaapi:FuzzRuntimeAPI \
	./internal/lambdaapi:FuzzRuntimeConn \
	./internal/manifest:FuzzParse \
	./internal/runtime/wasm:FuzzInstrumentLoops \
	./internal/s3api:FuzzChunkedReader \
	./internal/sigv4:FuzzParseAuthorization \
	./internal/workflow:FuzzStoredAndAPIInput \
	./internal/workflow/asl:FuzzParse \
	./internal/workflow/asl:FuzzPath

fuzz:
	@for f in $(FUZZERS); do \
		echo "== $${f#*:} ($${f%%:*})"; \
		$(GO) test -run '^$$' -fuzz "^$${f#*:}$$" -fuzztime 30s "$${f%%:*}" || exit 1; \
	done

lint:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)

check: lint
	$(GO) mod tidy && git diff --exit-code go.mod go.sum

run:
	$(GO) run ./cmd/nimbus up --demo
