package process

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nimbus-run/nimbus/internal/function"
)

// requireCgroups skips a test of cgroup-only behaviour where the node
// cannot create cgroups (not root, nothing mounted). On a host that can,
// the test runs: LimitMode must then not be "rlimit".
func requireCgroups(t *testing.T, r *Runtime) {
	t.Helper()
	if r.cgroups == nil {
		t.Skipf("no cgroups on this host (limit mode %s): %s", r.LimitMode(), r.noCgWhy)
	}
	if m := r.LimitMode(); m != "cgroup" && m != "cgroup-v1" {
		t.Fatalf("LimitMode = %q with cgroups, want cgroup or cgroup-v1", m)
	}
}

// runtimeCgroupDirs are the runtime's own directories, one per hierarchy.
func runtimeCgroupDirs(t *testing.T, r *Runtime) []string {
	t.Helper()
	switch m := r.cgroups.(type) {
	case *cgroupV2Manager:
		return []string{m.dir}
	case *cgroupV1Manager:
		return m.dirs()
	}
	t.Fatalf("unknown cgroup manager %T", r.cgroups)
	return nil
}

// instanceCgroupDirs are an instance's cgroup directories.
func instanceCgroupDirs(t *testing.T, in *instance) []string {
	t.Helper()
	switch c := in.cg.(type) {
	case *cgroupV2:
		return []string{c.dir}
	case *cgroupV1:
		return c.dirs()
	}
	t.Fatalf("instance has no cgroup (%T)", in.cg)
	return nil
}

func TestLimitModeOff(t *testing.T) {
	r := newRuntime(t, func(c *Config) { c.Cgroups = "off" })
	if got := r.LimitMode(); got != "rlimit" {
		t.Errorf("LimitMode = %q, want rlimit", got)
	}
	// Without cgroups the record's peak is the process's peak RSS.
	code := echoBinary(t)
	spec := newSpec("echo", code)
	prepare(t, r, spec, code)
	in := start(t, r, spec)
	if res := mustInvoke(t, in, `{}`); res.MaxMemoryBytes < 1<<20 {
		t.Errorf("MaxMemoryBytes = %d under rlimits, want the peak RSS", res.MaxMemoryBytes)
	}
}

// TestCgroupPlacement checks that a started process is in its cgroups,
// with the limits of its spec, and that RLIMIT_DATA gives way to the
// cgroup's memory limit while RLIMIT_NOFILE stays.
func TestCgroupPlacement(t *testing.T) {
	code := fixtureBinary(t)
	r := newRuntime(t, func(c *Config) { c.MaxProcs = 77; c.MaxOpenFiles = 333 })
	requireCgroups(t, r)
	spec := newSpec("placed", code)
	spec.MemoryMB = 96
	prepare(t, r, spec, code)
	in := start(t, r, spec)

	procCgroups := readString("/proc/" + strconv.Itoa(in.PID()) + "/cgroup")
	for _, dir := range instanceCgroupDirs(t, in) {
		if filepath.Base(dir) != in.id {
			t.Errorf("cgroup %s is not named after instance %s", dir, in.id)
		}
		if !strings.Contains(procCgroups, "/"+filepath.Base(filepath.Dir(dir))+"/"+in.id+"\n") {
			t.Errorf("process %d is not in %s; /proc/%d/cgroup:\n%s", in.PID(), dir, in.PID(), procCgroups)
		}
	}
	want := map[string]string{}
	switch c := in.cg.(type) {
	case *cgroupV1:
		want[filepath.Join(c.memory, "memory.limit_in_bytes")] = strconv.Itoa(96 << 20)
		if _, err := os.Stat(filepath.Join(c.memory, "memory.memsw.limit_in_bytes")); err == nil {
			want[filepath.Join(c.memory, "memory.memsw.limit_in_bytes")] = strconv.Itoa(96 << 20)
		}
		if c.pids != "" {
			want[filepath.Join(c.pids, "pids.max")] = "77"
		}
	case *cgroupV2:
		want[filepath.Join(c.dir, "memory.max")] = strconv.Itoa(96 << 20)
	}
	for file, v := range want {
		if got := strings.TrimSpace(readString(file)); got != v {
			t.Errorf("%s = %q, want %q", file, got, v)
		}
	}
	limits := readString("/proc/" + strconv.Itoa(in.PID()) + "/limits")
	for _, re := range []string{`Max data size\s+unlimited\s+unlimited`, `Max open files\s+333\s+333`} {
		if !regexp.MustCompile(re).MatchString(limits) {
			t.Errorf("/proc/%d/limits does not match %q:\n%s", in.PID(), re, limits)
		}
	}
}

func TestCgroupOutOfMemory(t *testing.T) {
	const memMB = 64
	code := fixtureBinary(t)
	r := newRuntime(t)
	requireCgroups(t, r)
	spec := newSpec("hog", code)
	spec.MemoryMB = memMB
	prepare(t, r, spec, code)
	in := start(t, r, spec)

	res := mustInvoke(t, in, `{"op":"alloc","mb":16}`)
	decode(t, res)
	if res.MaxMemoryBytes < 16<<20 {
		t.Errorf("MaxMemoryBytes = %d after allocating 16 MiB, want at least that", res.MaxMemoryBytes)
	}
	time.Sleep(peakEvery) // the next reading is fresh

	res = mustInvoke(t, in, `{"op":"alloc","mb":1024}`)
	if res.Err == nil || res.Err.Type != ErrorTypeOutOfMemory {
		t.Fatalf("Err = %#v, want %s (mode %s)\nlogs:\n%s", res.Err, ErrorTypeOutOfMemory, r.LimitMode(), res.Logs)
	}
	if res.MaxMemoryBytes < 16<<20 || res.MaxMemoryBytes > (memMB+4)<<20 {
		t.Errorf("MaxMemoryBytes = %d, want between 16 MiB and about the %d MiB limit", res.MaxMemoryBytes, memMB)
	}
	if in.Reusable() {
		t.Error("instance reusable after running out of memory")
	}
	t.Logf("peak %d bytes at OOM", res.MaxMemoryBytes)
}

func TestCgroupProcessCap(t *testing.T) {
	const maxProcs = 32
	code := fixtureBinary(t)
	r := newRuntime(t, func(c *Config) { c.MaxProcs = maxProcs })
	requireCgroups(t, r)
	if m, ok := r.cgroups.(*cgroupV1Manager); ok && m.pids == "" {
		t.Skip("the cgroup v1 pids hierarchy is not usable here")
	}
	if m, ok := r.cgroups.(*cgroupV2Manager); ok && !m.pids {
		t.Skip("the pids controller is not available in " + m.dir)
	}
	spec := newSpec("forkbomb", code)
	// One P: at the cap the Go runtime has no reason to start a thread.
	spec.Env = map[string]string{"GOMAXPROCS": "1"}
	prepare(t, r, spec, code)
	in := start(t, r, spec)

	// pids.max counts tasks (threads): the Go fixture's own threads take
	// some of the 32, children the rest, and the 100th cannot start.
	fr := decode(t, mustInvoke(t, in, `{"op":"procs","code":100}`))
	t.Logf("data %q", fr.Data)
	n, msg, _ := strings.Cut(fr.Data, " ")
	started, _ := strconv.Atoi(n)
	if started == 0 || started >= maxProcs {
		t.Errorf("started %d children, want between 1 and %d (data %q)", started, maxProcs-1, fr.Data)
	}
	if !strings.Contains(msg, "resource temporarily unavailable") {
		t.Errorf("start error = %q, want EAGAIN from fork", msg)
	}
	// Once they are gone the instance works and may fork again.
	fr = decode(t, mustInvoke(t, in, `{"op":"procs","code":3}`))
	if fr.Data != "3" {
		t.Errorf("after the cap: data %q, want 3 children started", fr.Data)
	}
}

// TestCgroupKillsEscapedSession: a child that left the process group
// (setsid) dies with its instance, on timeout and on Close.
func TestCgroupKillsEscapedSession(t *testing.T) {
	code := fixtureBinary(t)
	r := newRuntime(t)
	requireCgroups(t, r)
	spec := newSpec("escape", code)
	prepare(t, r, spec, code)

	escaped := func(t *testing.T, in *instance, pid int) {
		t.Helper()
		st, ok := procStat(pid)
		if !ok || !processAlive(pid) {
			t.Fatalf("child %d is not running", pid)
		}
		if st.pgrp == in.PID() {
			t.Fatalf("child %d is still in the instance's process group", pid)
		}
	}

	t.Run("timeout", func(t *testing.T) {
		in := start(t, r, spec)
		res, err := invoke(t, in, `{"op":"setsid","sleep_ms":60000}`, 700*time.Millisecond)
		if !errors.Is(err, function.ErrTimeout) {
			t.Fatalf("Invoke = %v, want ErrTimeout", err)
		}
		m := regexp.MustCompile(`child pid (\d+)`).FindSubmatch(res.Logs)
		if m == nil {
			t.Fatalf("logs = %q, want the child's pid", res.Logs)
		}
		pid, _ := strconv.Atoi(string(m[1]))
		// The kill is done when Invoke returns.
		if processAlive(pid) {
			t.Errorf("child %d, in its own session, survived the timeout", pid)
		}
	})
	t.Run("close", func(t *testing.T) {
		in := start(t, r, spec)
		fr := decode(t, mustInvoke(t, in, `{"op":"setsid"}`))
		pid, _ := strconv.Atoi(fr.Data)
		escaped(t, in, pid)
		if err := in.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if processAlive(pid) {
			t.Errorf("child %d, in its own session, survived Close", pid)
		}
	})
	t.Run("runtime exits", func(t *testing.T) {
		in := start(t, r, spec)
		fr := decode(t, mustInvoke(t, in, `{"op":"setsid"}`))
		pid, _ := strconv.Atoi(fr.Data)
		escaped(t, in, pid)
		res := mustInvoke(t, in, `{"op":"exit","code":1}`)
		if res.Err == nil || res.Err.Type != ErrorTypeExit {
			t.Fatalf("Err = %#v, want %s", res.Err, ErrorTypeExit)
		}
		// The waiter kills the cgroup when the runtime exits: Lambda
		// discards the whole environment.
		eventually(t, 2*time.Second, "escaped child killed", func() bool { return !processAlive(pid) })
	})
}

// TestCgroupCleanup: nothing is left in the cgroup hierarchies once the
// runtime is closed, and a new runtime removes what a dead node left.
func TestCgroupCleanup(t *testing.T) {
	code := fixtureBinary(t)
	r, err := New(Config{WorkDir: t.TempDir(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close(context.Background()) }) // after a failure; Close is idempotent
	requireCgroups(t, r)
	spec := newSpec("tidy", code)
	prepare(t, r, spec, code)
	var instDirs []string
	for range 3 {
		inst, err := r.Start(context.Background(), spec)
		if err != nil {
			t.Fatal(err)
		}
		instDirs = append(instDirs, instanceCgroupDirs(t, inst.(*instance))...)
	}
	// One instance closed before the runtime, the others by it.
	inst, err := r.Start(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	closedDirs := instanceCgroupDirs(t, inst.(*instance))
	if err := inst.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, d := range closedDirs {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("cgroup %s left after the instance's Close (stat: %v)", d, err)
		}
	}
	rtDirs := runtimeCgroupDirs(t, r)
	for _, d := range append(rtDirs, instDirs...) {
		if _, err := os.Stat(d); err != nil {
			t.Fatalf("cgroup %s missing while the runtime runs: %v", d, err)
		}
	}
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, d := range append(rtDirs, instDirs...) {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("cgroup %s left after Close (stat: %v)", d, err)
		}
	}

	t.Run("leftovers of a dead node", func(t *testing.T) {
		// A node that died: its pid is free now.
		dead := exec.Command("true")
		if err := dead.Run(); err != nil {
			t.Fatal(err)
		}
		// Where this node would put its runtime directories. Each is built
		// under a name no sweep matches, then renamed, since any node
		// starting meanwhile (other test processes) sweeps it too.
		stray := exec.Command("sleep", "1000") // escaped into a new session, it lives on
		if err := stray.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = stray.Process.Kill(); _ = stray.Wait() })
		var leftovers []string
		for i, d := range rtDirs {
			tmp := filepath.Join(filepath.Dir(d), "nimbus_test-"+newID())
			if err := os.MkdirAll(filepath.Join(tmp, "0123456789abcdef"), 0o755); err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				if err := writeFile(filepath.Join(tmp, "0123456789abcdef", "cgroup.procs"), strconv.Itoa(stray.Process.Pid)); err != nil {
					t.Fatal(err)
				}
			}
			left := filepath.Join(filepath.Dir(d), fmt.Sprintf("%s%d-1", cgroupPrefix, dead.Process.Pid))
			if err := os.Rename(tmp, left); err != nil {
				_ = removeCgroupTree(tmp)
				t.Fatal(err)
			}
			leftovers = append(leftovers, left)
		}
		// A directory of a live node is not touched.
		live := filepath.Join(filepath.Dir(rtDirs[0]), fmt.Sprintf("%s%d-1", cgroupPrefix, os.Getppid()))
		if err := os.Mkdir(live, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = removeCgroup(live) })

		r2 := newRuntime(t)
		requireCgroups(t, r2)
		for _, d := range leftovers {
			if _, err := os.Stat(d); !os.IsNotExist(err) {
				t.Errorf("leftover cgroup %s not removed (stat: %v)", d, err)
			}
		}
		eventually(t, 2*time.Second, "stray process killed", func() bool { return !processAlive(stray.Process.Pid) })
		if _, err := os.Stat(live); err != nil {
			t.Errorf("the cgroup of a live node was removed: %v", err)
		}
	})
}

func TestCgroupV1Parents(t *testing.T) {
	const mountinfo = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 /docker/abc /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
37 31 0:34 / /mnt/my\040freezer rw - cgroup cgroup rw,freezer
38 31 0:35 /docker/abc /sys/fs/cgroup/blkio rw - cgroup cgroup rw,blkio
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`
	const procCgroup = `12:pids:/docker/abc/app
11:freezer:/
10:memory:/system.slice/nimbus.service
9:blkio:/docker/abcdef
1:name=systemd:/system.slice/nimbus.service
0::/system.slice/nimbus.service
`
	mounts, own := parseCgroupV1Mounts(mountinfo), parseCgroupsV1(procCgroup)
	tests := []struct {
		controller string
		want       []string
	}{
		{"memory", []string{"/sys/fs/cgroup/memory/system.slice/nimbus.service", "/sys/fs/cgroup/memory"}},
		{"pids", []string{"/sys/fs/cgroup/pids/app", "/sys/fs/cgroup/pids"}}, // the mount shows a subtree
		{"freezer", []string{"/mnt/my freezer"}},                             // the node is at the root
		{"blkio", []string{"/sys/fs/cgroup/blkio"}},                          // not below the mount's root
		{"cpuacct", []string{"/sys/fs/cgroup/cpu,cpuacct"}},                  // co-mounted; no line for it
		{"devices", nil}, // not mounted
	}
	for _, tt := range tests {
		t.Run(tt.controller, func(t *testing.T) {
			got := cgroupV1Parents(mounts, own, tt.controller)
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("parents = %q, want %q", got, tt.want)
			}
		})
	}
}
