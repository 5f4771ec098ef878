package main

import (
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
)

// relay is the least a Lambda Runtime API platform can do: an HTTP server
// that hands each request body to a process polling /next and answers with
// what the process posts back. No routing, pools, limits, records, logs or
// metrics. It runs the same unmodified binary, so its throughput is the
// ceiling this protocol allows on this machine, and the platform's figure
// against it is the platform's own overhead.
type relay struct {
	invoke  string // URL that takes an event and answers the function's response
	servers []*http.Server
	procs   []*exec.Cmd
}

type relayCall struct {
	body []byte
	done chan []byte
}

// startRelay starts procs processes of bin, each serving mc invocations at
// once (AWS_LAMBDA_MAX_CONCURRENCY) on one CPU (GOMAXPROCS=1, as the process
// runtime pins a 128 MB function).
func startRelay(bin string, procs, mc int) (*relay, error) {
	var (
		queue   = make(chan *relayCall)
		pending sync.Map // request id → *relayCall
		seq     atomic.Int64
		r       = &relay{}
	)
	rt := http.NewServeMux()
	rt.HandleFunc("GET /2018-06-01/runtime/invocation/next", func(w http.ResponseWriter, req *http.Request) {
		var c *relayCall
		select {
		case c = <-queue:
		case <-req.Context().Done():
			return
		}
		id := strconv.FormatInt(seq.Add(1), 10)
		pending.Store(id, c)
		h := w.Header()
		h.Set("Lambda-Runtime-Aws-Request-Id", id)
		h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(time.Now().Add(time.Minute).UnixMilli(), 10))
		h.Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:000000000000:function:relay")
		h.Set("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
		w.Write(c.body)
	})
	rt.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/response", func(w http.ResponseWriter, req *http.Request) {
		b, err := io.ReadAll(req.Body)
		c, ok := pending.LoadAndDelete(req.PathValue("id"))
		if err != nil || !ok {
			http.Error(w, "unknown request id", http.StatusBadRequest)
			return
		}
		c.(*relayCall).done <- b
		w.WriteHeader(http.StatusAccepted)
	})
	inv := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, err := io.ReadAll(req.Body)
		if err != nil {
			return
		}
		c := &relayCall{body: b, done: make(chan []byte, 1)}
		queue <- c
		out := <-c.done
		w.Header().Set("Content-Type", "application/json")
		w.Write(out)
	})
	rtAddr, err := r.serve(rt)
	if err != nil {
		return nil, err
	}
	invAddr, err := r.serve(inv)
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

func (r *relay) serve(h http.Handler) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	s := &http.Server{Handler: h}
	r.servers = append(r.servers, s)
	go s.Serve(ln)
	return ln.Addr().String(), nil
}

func (r *relay) close() {
	for _, p := range r.procs {
		p.Process.Kill()
		p.Wait()
	}
	for _, s := range r.servers {
		s.Close()
	}
}
