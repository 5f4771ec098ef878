package process

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/lambdaapi"
	"github.com/nimbus-run/nimbus/internal/runtime"
)

var (
	_ runtime.Instance     = (*instance)(nil)
	_ runtime.InitReporter = (*instance)(nil)
)

// Error types of failures the runtime, not the function, observes.
const (
	ErrorTypeExit        = "Runtime.ExitError"
	ErrorTypeOutOfMemory = "Runtime.OutOfMemory"
)

const (
	// idleGrace bounds how long Invoke waits, after a response, for the
	// runtime to ask for the next invocation (see Invoke).
	idleGrace = 20 * time.Millisecond
	// logWait bounds how long Invoke waits for the log reader to catch up
	// with what is already in the pipe.
	logWait = 50 * time.Millisecond
	// exitWait bounds how long a timed-out Invoke waits for the killed
	// process to be reaped.
	exitWait = 2 * time.Second
	// peakEvery is how stale a peak memory reading may be.
	peakEvery = 10 * time.Millisecond
)

// instance is one child process serving invocations through its own
// Runtime API server.
type instance struct {
	rt       *Runtime
	name     string
	id       string
	capacity int
	dir      string // private copy of the code; LAMBDA_TASK_ROOT and cwd
	api      *lambdaapi.RuntimeServer
	logs     *logCollector
	cg       instanceCgroup // nil under rlimits
	cmd      *exec.Cmd
	pid      int // also the process group id (Setpgid)
	initDur  time.Duration

	exited   chan struct{} // closed once the process is reaped; exitErr is set
	exitErr  error
	waitDone chan struct{} // the waiter goroutine has returned

	mu     sync.Mutex
	reaped bool // the leader is reaped, so its pgid may be reused: never signal it again

	failed    atomic.Bool
	closing   atomic.Bool
	peak      atomic.Uint64
	peakAt    atomic.Int64 // when peak was last read (UnixNano)
	status    *os.File     // /proc/<pid>/status, for the peak without cgroups
	closeOnce sync.Once
	closeErr  error
}

// Start starts one instance: a fresh directory, a Runtime API server, the
// process. It returns once the process has called /next for the first time.
//
// # Errors
//
// When the function fails to initialize (it posts /init/error or exits) the
// error wraps function.ErrFunction and a *runtime.FunctionError; when ctx
// ends first it wraps function.ErrTimeout (deadline) and ctx.Err().
func (r *Runtime) Start(ctx context.Context, spec *function.Spec) (runtime.Instance, error) {
	in, err := r.start(ctx, spec)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", spec.Name, err)
	}
	return in, nil
}

func (r *Runtime) start(ctx context.Context, spec *function.Spec) (_ *instance, err error) {
	codeDir, err := r.ensureCode(ctx, spec)
	if err != nil {
		return nil, err
	}
	in := &instance{
		rt:       r,
		name:     spec.Name,
		id:       newID(),
		capacity: max(spec.Concurrency, 1),
		exited:   make(chan struct{}),
		waitDone: make(chan struct{}),
	}
	if err := r.track(in); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			// A failed start undoes what it did, even if ctx is done.
			_ = in.Close(context.WithoutCancel(ctx))
		}
	}()

	in.dir, err = os.MkdirTemp(r.instDir, spec.Name+"-")
	if err != nil {
		return nil, fmt.Errorf("instance dir: %w", err)
	}
	if err := linkTree(codeDir, in.dir); err != nil {
		return nil, fmt.Errorf("instance dir: %w", err)
	}
	path, argv, err := r.command(spec, in.dir)
	if err != nil {
		return nil, err
	}
	in.api, err = lambdaapi.NewRuntimeServer(lambdaapi.RuntimeServerConfig{
		Concurrency: in.capacity,
		FunctionARN: r.functionARN(spec),
	})
	if err != nil {
		return nil, err
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("pipe: %w", err)
	}
	defer pw.Close() // the child holds its own copy
	in.logs = newLogCollector(pr)

	memBytes := uint64(max(spec.MemoryMB, 1)) << 20
	dataLimit := memBytes + uint64(r.cfg.MemoryHeadroomMB)<<20
	attr := &syscall.SysProcAttr{
		// Its own group, so a timeout kills whatever it forked.
		Setpgid: true,
		// If the node dies, the runtime dies with it. (Linux sends this when
		// the forking thread exits; Go keeps threads unless a goroutine
		// exits while locked to one, which the node does not do.)
		Pdeathsig: syscall.SIGKILL,
	}
	if r.cgroups != nil {
		cg, err := r.cgroups.create(in.id, memBytes, r.cfg.MaxProcs)
		if err != nil {
			r.log.Warn("process runtime: no cgroup for instance, using rlimits", "function", spec.Name, "err", err)
		} else {
			in.cg = cg
			dataLimit = 0 // the cgroup's memory limit is the limit
			if fd := cg.cloneFD(); fd >= 0 {
				attr.UseCgroupFD, attr.CgroupFD = true, fd
			}
		}
	}

	env := r.environ(spec, in)
	started := time.Now()
	var cmd *exec.Cmd
	start := func() (err error) {
		cmd, err = startCmd(path, argv, in.dir, env, pw, attr)
		return err
	}
	if set, pin := r.cpus.place(spec.MemoryMB); pin {
		err = withAffinity(set, start)
	} else {
		err = start()
	}
	if err != nil {
		return nil, fmt.Errorf("exec %s: %w", argv[0], err)
	}
	in.cmd, in.pid = cmd, cmd.Process.Pid
	var enterErr error
	if in.cg != nil {
		// First thing: under cgroup v1 the child runs outside its cgroups
		// until this (RATIONALE.md, Limits). Before the waiter starts, so
		// the pid cannot have been reaped and reused.
		enterErr = in.cg.enter(in.pid)
	}
	if in.cg == nil {
		// The peak without cgroups. Opened while the child cannot have
		// been reaped, so the file never describes a later process that
		// reuses the pid.
		in.status, _ = os.Open("/proc/" + strconv.Itoa(in.pid) + "/status")
	}
	go in.wait()
	if enterErr != nil && !errors.Is(enterErr, unix.ESRCH) {
		return nil, enterErr // ESRCH: it already exited, which the select below reports
	}
	if err := setRlimits(in.pid, dataLimit, uint64(r.cfg.MaxOpenFiles)); err != nil && !errors.Is(err, unix.ESRCH) {
		return nil, err // ESRCH: it already exited, which the select below reports
	}

	select {
	case <-in.api.Ready():
		in.initDur = in.api.ReadyAt().Sub(started)
		return in, nil
	case <-in.api.InitFailed():
		in.logs.drain(logWait)
		return nil, fmt.Errorf("init: %w: %w%s", function.ErrFunction, in.api.InitError(), in.outputNote())
	case <-in.exited:
		in.logs.drain(logWait)
		fe := &runtime.FunctionError{Type: in.exitType(), Message: "Runtime exited without providing a reason: " + exitStatus(in.exitErr)}
		return nil, fmt.Errorf("init: %w: %w%s", function.ErrFunction, fe, in.outputNote())
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("init: %w: %w%s", function.ErrTimeout, ctx.Err(), in.outputNote())
		}
		return nil, fmt.Errorf("init: %w", ctx.Err())
	}
}

// startCmd starts the process, retrying ETXTBSY: a file written by this
// node (the unpacked bootstrap) can be briefly held open for writing by a
// child forked elsewhere in the node before that child's exec closes it.
func startCmd(path string, argv []string, dir string, env []string, out *os.File, attr *syscall.SysProcAttr) (*exec.Cmd, error) {
	for attempt := 0; ; attempt++ {
		cmd := &exec.Cmd{
			Path:        path,
			Args:        argv,
			Dir:         dir,
			Env:         env,
			Stdout:      out, // one *os.File for both: exec passes the fd itself, no copying goroutine
			Stderr:      out,
			SysProcAttr: attr,
		}
		err := cmd.Start()
		if err == nil || !errors.Is(err, syscall.ETXTBSY) || attempt == 5 {
			return cmd, err
		}
		time.Sleep(time.Millisecond << attempt)
	}
}

// environ is the process's whole environment: nothing is inherited from the
// node but PATH (a bootstrap in sh needs its tools).
func (r *Runtime) environ(spec *function.Spec, in *instance) []string {
	version := spec.Version
	if version == "" {
		version = function.LatestVersion
	}
	handler := spec.Handler
	if handler == "" {
		handler = bootstrapName
	}
	env := map[string]string{"PATH": r.cfg.Path}
	for k, v := range spec.Env {
		env[k] = v // reserved names are refused by Prepare and overwritten below
	}
	if r.cfg.ExtraEnv != nil {
		for k, v := range r.cfg.ExtraEnv(spec) {
			env[k] = v
		}
	}
	set := map[string]string{
		"AWS_LAMBDA_RUNTIME_API":          in.api.Addr(),
		"AWS_LAMBDA_FUNCTION_NAME":        spec.Name,
		"AWS_LAMBDA_FUNCTION_VERSION":     version,
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": strconv.Itoa(spec.MemoryMB),
		"AWS_LAMBDA_LOG_GROUP_NAME":       "/aws/lambda/" + spec.Name,
		"AWS_LAMBDA_LOG_STREAM_NAME":      time.Now().UTC().Format("2006/01/02") + "/[" + version + "]" + in.id,
		"AWS_REGION":                      r.cfg.Region,
		"AWS_DEFAULT_REGION":              r.cfg.Region,
		"_HANDLER":                        handler,
		"LAMBDA_TASK_ROOT":                in.dir,
		"TZ":                              ":UTC",
	}
	if in.capacity > 1 {
		set["AWS_LAMBDA_MAX_CONCURRENCY"] = strconv.Itoa(in.capacity)
	}
	for k, v := range set {
		env[k] = v
	}
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

func (r *Runtime) functionARN(spec *function.Spec) string {
	arn := "arn:aws:lambda:" + r.cfg.Region + ":" + r.cfg.AccountID + ":function:" + spec.Name
	if spec.Version != "" && spec.Version != function.LatestVersion {
		arn += ":" + spec.Version
	}
	return arn
}

// wait reaps the process. It first waits without reaping (WNOWAIT) and
// kills the group while the leader is a zombie: until it is reaped its pid,
// which is the group id, cannot be reused, so the kill cannot hit a stranger.
func (in *instance) wait() {
	defer close(in.waitDone)
	var info unix.Siginfo
	for {
		if err := unix.Waitid(unix.P_PID, in.pid, &info, unix.WEXITED|unix.WNOWAIT, nil); err != unix.EINTR {
			break
		}
	}
	in.mu.Lock()
	// The runtime is gone; whatever it forked goes too (Lambda freezes and
	// then discards the whole environment).
	in.killLocked()
	in.reaped = true
	in.mu.Unlock()
	in.exitErr = in.cmd.Wait()
	in.failed.Store(true)
	close(in.exited)
	// Invocations in flight end now, with the exit as their error.
	_ = in.api.Close()
}

func (in *instance) kill() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.killLocked()
}

func (in *instance) killLocked() {
	if in.cg != nil {
		in.cg.kill()
	}
	if in.pid > 0 && !in.reaped {
		_ = unix.Kill(-in.pid, unix.SIGKILL)
	}
}

// Invoke hands req to the runtime and waits for its answer.
//
// With concurrency 1 it then waits, at most idleGrace, for the runtime to
// ask for the next invocation, as Lambda does before it ends an invocation:
// output written after the response still belongs to this invocation, and a
// runtime that exits after answering (aws-lambda-go after a panic) is known
// to be gone before the pool reuses it.
//
// # Errors
//
// A function error, a crash mid-invocation (Runtime.ExitError) or an
// oversized response is Result.Err with a nil error. On timeout the process
// group is killed and the error wraps function.ErrTimeout; the logs captured
// so far come in a non-nil Result beside the error (also when ctx is
// canceled rather than past its deadline). A process that died
// before taking the invocation gives an error wrapping
// function.ErrUnavailable.
func (in *instance) Invoke(ctx context.Context, req *runtime.Request) (*runtime.Result, error) {
	if in.closing.Load() {
		return nil, fmt.Errorf("invoke %s: %w: instance closed", in.name, function.ErrUnavailable)
	}
	select {
	case <-in.exited:
		return nil, fmt.Errorf("invoke %s: %w: process exited (%s)", in.name, function.ErrUnavailable, exitStatus(in.exitErr))
	default:
	}
	id := req.ID
	if id == "" {
		id = newID()
	}
	sink := in.logs.begin()
	resp, err := in.api.Invoke(ctx, &lambdaapi.Invocation{
		ID:            id,
		Payload:       req.Payload,
		Deadline:      req.Deadline,
		TraceID:       req.TraceID,
		ClientContext: req.ClientContext,
		Identity:      req.Identity,
		HTTP:          req.HTTP,
	})
	if err == nil && in.capacity == 1 {
		gctx, cancel := context.WithTimeout(ctx, idleGrace)
		_ = in.api.AwaitPollers(gctx, 1)
		cancel()
	}

	res := &runtime.Result{}
	var retErr error
	ctxEnded := false
	switch {
	case err == nil:
		res.Payload, res.Err = resp.Payload, resp.Err
	case errors.Is(err, lambdaapi.ErrClosed):
		if in.closing.Load() {
			retErr = fmt.Errorf("invoke %s: %w: instance closed", in.name, function.ErrUnavailable)
			break
		}
		<-in.exited
		// The process is gone, so all it wrote is in the pipe: read to the
		// end before taking this invocation's logs.
		in.logs.drain(logWait)
		if errors.Is(err, lambdaapi.ErrNotDelivered) {
			retErr = fmt.Errorf("invoke %s: %w: process exited (%s) before taking the invocation", in.name, function.ErrUnavailable, exitStatus(in.exitErr))
			break
		}
		res.Err = &runtime.FunctionError{
			Type:    in.exitType(),
			Message: "RequestId: " + id + " Error: Runtime exited with error: " + exitStatus(in.exitErr),
		}
	default: // ctx ended: the work must stop, and nothing else can stop it
		ctxEnded = true
		in.failed.Store(true)
		in.kill()
		t := time.NewTimer(exitWait)
		select {
		case <-in.exited:
		case <-t.C:
		}
		t.Stop()
		if errors.Is(err, context.DeadlineExceeded) {
			retErr = fmt.Errorf("invoke %s: %w: %w", in.name, function.ErrTimeout, err)
		} else {
			retErr = fmt.Errorf("invoke %s: %w", in.name, err)
		}
	}
	res.Logs, res.LogsTruncated = in.logs.end(sink, logWait)
	res.MaxMemoryBytes = in.peakMemory()
	if retErr != nil && !ctxEnded {
		return nil, retErr
	}
	return res, retErr
}

// exitType is the error type for a process that exited on its own.
func (in *instance) exitType() string {
	if in.cg != nil && in.cg.oomKilled() {
		return ErrorTypeOutOfMemory
	}
	return ErrorTypeExit
}

// peakMemory is the instance's peak memory so far. Reading it costs the
// kernel a page of text, so back-to-back short invocations share one
// reading per peakEvery; any invocation longer than that reads afresh.
func (in *instance) peakMemory() uint64 {
	now := time.Now().UnixNano()
	if last := in.peakAt.Load(); now-last < int64(peakEvery) {
		return in.peak.Load()
	}
	in.peakAt.Store(now)
	var v uint64
	if in.cg != nil {
		v = in.cg.peak()
	} else {
		v = peakRSS(in.status)
	}
	for {
		old := in.peak.Load()
		if v <= old {
			return old // the process is gone, or its peak is not new
		}
		if in.peak.CompareAndSwap(old, v) {
			return v
		}
	}
}

// outputNote is the end of the process's output, for start errors.
func (in *instance) outputNote() string {
	if out := in.logs.lastOutput(); out != "" {
		return fmt.Sprintf("; last output: %q", out)
	}
	return ""
}

func exitStatus(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// Capacity is the function's per-instance concurrency.
func (in *instance) Capacity() int { return in.capacity }

// Reusable is false once the process has exited or an invocation timed out.
func (in *instance) Reusable() bool {
	return !in.failed.Load() && !in.closing.Load()
}

// InitDuration is the time from exec to the first /next call.
func (in *instance) InitDuration() time.Duration { return in.initDur }

// PID is the process id (and process group id) of the instance, for tests
// and diagnostics.
func (in *instance) PID() int { return in.pid }

// Close kills the process group and removes the instance's directory,
// cgroup and Runtime API server. It is safe to call more than once.
func (in *instance) Close(ctx context.Context) error {
	in.closeOnce.Do(func() { in.closeErr = in.close(ctx) })
	return in.closeErr
}

func (in *instance) close(ctx context.Context) error {
	in.closing.Store(true)
	var errs []error
	if in.cmd != nil {
		in.kill()
		select {
		case <-in.waitDone:
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("wait for exit: %w", ctx.Err()))
		}
	}
	if in.api != nil {
		errs = append(errs, in.api.Close())
	}
	if in.logs != nil {
		in.logs.close()
	}
	if in.status != nil {
		in.status.Close()
	}
	if in.cg != nil {
		errs = append(errs, in.cg.remove())
	}
	if in.dir != "" {
		errs = append(errs, os.RemoveAll(in.dir))
	}
	in.rt.untrack(in)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close %s: %w", in.name, err)
	}
	return nil
}
