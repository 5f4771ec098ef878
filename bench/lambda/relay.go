package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nimbus-run/nimbus/internal/httploop"
)

// relay is the least a Lambda Runtime API platform can do: it hands each
// request body to a process polling /next and answers with what the process
// posts back. No routing, pools, limits, records, logs or metrics. It runs
// the same unmodified binary, so its throughput is the ceiling the protocol
// allows on this machine, and the platform's figure against it is the
// platform's own overhead.
//
// With raw set, both of its servers are internal/httploop's plain
// HTTP/1.1 loop instead of net/http's server: the ceiling with the
// server's own cost cut to what the node's Runtime API pays.
type relay struct {
	invoke  string // URL that takes an event and answers the function's response
	queue   chan *relayCall
	pending sync.Map // request id → *relayCall
	seq     atomic.Int64
	closers []io.Closer
	procs   []*exec.Cmd
}

type relayCall struct {
	body []byte
	done chan []byte
}

const relayARN = "arn:aws:lambda:us-east-1:000000000000:function:relay"

// startRelay starts procs processes of bin, each serving mc invocations at
// once (AWS_LAMBDA_MAX_CONCURRENCY) on one CPU (GOMAXPROCS=1, as the process
// runtime pins a 128 MB function).
func startRelay(bin string, procs, mc int, raw bool) (*relay, error) {
	r := &relay{queue: make(chan *relayCall)}
	rtAddr, err := r.serve(false, raw)
	if err != nil {
		return nil, err
	}
	invAddr, err := r.serve(true, raw)
	if err != nil {
		r.close()
		return nil, err
	}
	r.invoke = "http://" + invAddr + "/"
	for range procs {
		cmd := exec.Command(bin)
		cmd.Env = []string{
			"AWS_LAMBDA_RUNTIME_API=" + rtAddr, "AWS_LAMBDA_MAX_CONCURRENCY=" + strconv.Itoa(mc),
			"AWS_LAMBDA_FUNCTION_NAME=relay", "_HANDLER=bootstrap", "GOMAXPROCS=1",
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			r.close()
			return nil, fmt.Errorf("relay: %w", err)
		}
		r.procs = append(r.procs, cmd)
	}
	return r, nil
}

// call passes an event to the next /next and waits for its response.
func (r *relay) call(body []byte) []byte {
	c := &relayCall{body: body, done: make(chan []byte, 1)}
	r.queue <- c
	return <-c.done
}

// next waits for an event and names it.
func (r *relay) next(ctx context.Context) (string, *relayCall) {
	select {
	case c := <-r.queue:
		id := strconv.FormatInt(r.seq.Add(1), 10)
		r.pending.Store(id, c)
		return id, c
	case <-ctx.Done():
		return "", nil
	}
}

func (r *relay) respond(id string, body []byte) bool {
	c, ok := r.pending.LoadAndDelete(id)
	if ok {
		c.(*relayCall).done <- body
	}
	return ok
}

func (r *relay) listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err == nil {
		r.closers = append(r.closers, ln)
	}
	return ln, err
}

// serve serves the Invoke side (with invoke) or the Runtime API, with
// net/http's server or, with raw, internal/httploop's loop, which the
// node's Runtime API and function listeners use.
func (r *relay) serve(invoke, raw bool) (string, error) {
	ln, err := r.listen()
	if err != nil {
		return "", err
	}
	mux := http.NewServeMux()
	if invoke {
		mux.HandleFunc("POST /", func(w http.ResponseWriter, req *http.Request) {
			if b, err := io.ReadAll(req.Body); err == nil {
				w.Header().Set("Content-Type", "application/json")
				w.Write(r.call(b))
			}
		})
	}
	mux.HandleFunc("GET /2018-06-01/runtime/invocation/next", func(w http.ResponseWriter, req *http.Request) {
		if id, c := r.next(req.Context()); c != nil {
			h := w.Header()
			h.Set("Lambda-Runtime-Aws-Request-Id", id)
			h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(time.Now().Add(time.Minute).UnixMilli(), 10))
			h.Set("Lambda-Runtime-Invoked-Function-Arn", relayARN)
			w.Write(c.body)
		}
	})
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/response", func(w http.ResponseWriter, req *http.Request) {
		b, err := io.ReadAll(req.Body)
		if err != nil || !r.respond(req.PathValue("id"), b) {
			http.Error(w, "unknown request id", http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
	if raw {
		r.closers = append(r.closers, httploop.Start(ln, mux, nil))
	} else {
		s := &http.Server{Handler: mux}
		r.closers = append(r.closers, s)
		go s.Serve(ln)
	}
	return ln.Addr().String(), nil
}

func (r *relay) close() {
	for _, p := range r.procs {
		p.Process.Kill()
		p.Wait()
	}
	for _, c := range r.closers {
		c.Close()
	}
}
