package process

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// setRlimits caps a started child with prlimit(2).
//
// os/exec cannot set rlimits for the child it forks, and the parent's own
// limits are process-wide, so the choice is prlimit right after start or
// re-executing the node binary as a shim that calls setrlimit before exec.
// The shim costs a second exec of a large binary on every cold start and
// needs a hook in main; prlimit leaves a window of microseconds between the
// child's execve and the call in which the child runs without caps. That
// window is too short to matter for memory (nothing the function wrote has
// run yet beyond its loader) and cgroup v2, where available, closes it: there
// the child is born inside its cgroup (clone3 CLONE_INTO_CGROUP). Under
// cgroup v1 the child is moved into its cgroups in the same window.
//
// Memory is RLIMIT_DATA, not RLIMIT_AS: a Go binary reserves hundreds of MB
// of address space at start (it fails under RLIMIT_AS below ~700 MB, and not
// monotonically), while RLIMIT_DATA counts private writable mappings, which
// tracks what a program really allocates. dataBytes 0 leaves it unset.
// RLIMIT_NPROC is not used: it counts every process of the node's user (and
// is ignored for root), so it would cap the node, not the function.
func setRlimits(pid int, dataBytes, openFiles uint64) error {
	set := func(res int, v uint64) error {
		return unix.Prlimit(pid, res, &unix.Rlimit{Cur: v, Max: v}, nil)
	}
	if err := set(unix.RLIMIT_NOFILE, openFiles); err != nil {
		return fmt.Errorf("prlimit nofile: %w", err)
	}
	// A crashing function must not fill the data directory with cores.
	if err := set(unix.RLIMIT_CORE, 0); err != nil {
		return fmt.Errorf("prlimit core: %w", err)
	}
	if dataBytes > 0 {
		if err := set(unix.RLIMIT_DATA, dataBytes); err != nil {
			return fmt.Errorf("prlimit data: %w", err)
		}
	}
	return nil
}

// peakRSS is the process's peak resident set (VmHWM), 0 if unknown. It
// covers the runtime process, not children it forked: reading every
// member's status per invocation would cost more than the number is worth.
// status is the process's open /proc/<pid>/status (nil: unknown).
func peakRSS(status *os.File) uint64 {
	if status == nil {
		return 0
	}
	var buf [4096]byte
	n, err := status.ReadAt(buf[:], 0)
	if n == 0 && err != nil {
		return 0
	}
	for line := range bytes.Lines(buf[:n]) {
		if v, ok := bytes.CutPrefix(line, []byte("VmHWM:")); ok {
			kb, err := strconv.ParseUint(string(bytes.TrimSuffix(bytes.TrimSpace(v), []byte(" kB"))), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// cgroupManager makes the cgroups of one Runtime's instances: cgroup v2
// (cgroupV2Manager) or, on hosts that still mount the v1 hierarchies,
// cgroup v1 (cgroupV1Manager). Instances see only instanceCgroup.
type cgroupManager interface {
	// mode is what Runtime.LimitMode reports: "cgroup" or "cgroup-v1".
	mode() string
	// logAttrs say where the runtime's cgroups are, for the start-up log.
	logAttrs() []any
	// create makes the cgroup of one instance with its limits set.
	create(id string, memBytes uint64, maxProcs int) (instanceCgroup, error)
	// close removes the runtime's own directories, killing whatever is
	// still inside them.
	close() error
}

// instanceCgroup is the cgroup (v2) or set of cgroups (v1, one per
// hierarchy) of one instance.
type instanceCgroup interface {
	// cloneFD is an open directory for SysProcAttr.CgroupFD, so the child
	// is born inside (clone3 CLONE_INTO_CGROUP); -1 when the child has to
	// be moved in by enter after it started.
	cloneFD() int
	// enter moves a started process in. A no-op where cloneFD is used.
	enter(pid int) error
	// kill kills every process in the cgroup, including any that left the
	// process group (setsid), and returns once they are gone (or a bound
	// passed).
	kill()
	// peak is the cgroup's peak memory use in bytes, 0 if unknown.
	peak() uint64
	// oomKilled reports whether the kernel killed a member for exceeding
	// the memory limit.
	oomKilled() bool
	// remove removes the cgroup; its processes must be gone.
	remove() error
}

const (
	cgroupMount = "/sys/fs/cgroup"
	// cgroupPrefix starts the directory of every Runtime, followed by the
	// node's pid and a sequence number ("nimbus-4242-1"): unique per
	// runtime, and telling which directories a dead node left behind.
	cgroupPrefix = "nimbus-"
	// killWait bounds how long a kill waits for a cgroup to empty.
	killWait = time.Second
)

var runtimeSeq atomic.Uint64

// cgroupName is the directory name of a new Runtime's cgroup.
func cgroupName() string {
	return fmt.Sprintf("%s%d-%d", cgroupPrefix, os.Getpid(), runtimeSeq.Add(1))
}

// detectCgroups picks how instances are limited: cgroup v2 if the node can
// create cgroups with the memory controller there, else cgroup v1 if the
// memory hierarchy is mounted and writable, else nothing (rlimits), with
// the reasons.
func detectCgroups() (cgroupManager, string) {
	m2, why2 := detectCgroupV2()
	if m2 != nil {
		return m2, ""
	}
	m1, why1 := detectCgroupV1()
	if m1 != nil {
		return m1, ""
	}
	return nil, "cgroup v2: " + why2 + "; cgroup v1: " + why1
}

// sweepCgroups removes the runtime directories that nodes no longer
// running left in parent (a crash, a kill -9), killing any process still
// inside: Pdeathsig took the runtime processes, but not what they started
// in a new session. Directories of live processes, this one included, are
// left alone: several nodes or runtimes may share a parent.
func sweepCgroups(parent string) error {
	ents, err := os.ReadDir(parent)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), cgroupPrefix)
		if !ok || !e.IsDir() {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-") // "nimbus-<pid>" (older) or "nimbus-<pid>-<n>"
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid <= 0 || pid == os.Getpid() || unix.Kill(pid, 0) != unix.ESRCH {
			continue
		}
		errs = append(errs, removeCgroupTree(filepath.Join(parent, e.Name())))
	}
	return errors.Join(errs...)
}

// removeCgroupTree kills the processes of dir and of every cgroup below it
// and removes them all, deepest first.
func removeCgroupTree(dir string) error {
	ents, _ := os.ReadDir(dir)
	var errs []error
	for _, e := range ents {
		if e.IsDir() {
			errs = append(errs, removeCgroupTree(filepath.Join(dir, e.Name())))
		}
	}
	// A v1 freezer cgroup a node crashed in the middle of a kill may be
	// frozen; frozen tasks die only once thawed. (Absent elsewhere.)
	_ = writeFile(filepath.Join(dir, "freezer.state"), "THAWED")
	killProcs(killWait, dir)
	errs = append(errs, removeCgroup(dir))
	return errors.Join(errs...)
}

// killProcs SIGKILLs the processes listed in the cgroup.procs of dirs
// until none is left or d passes, and reports whether none is left.
// Processes killed still show until they have exited (zombies do not), and
// one that forks while being read shows in the next round.
func killProcs(d time.Duration, dirs ...string) bool {
	deadline := time.Now().Add(d)
	for {
		n := 0
		for _, dir := range dirs {
			for _, pid := range cgroupPIDs(dir) {
				_ = unix.Kill(pid, unix.SIGKILL)
				n++
			}
		}
		if n == 0 {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
}

func cgroupPIDs(dir string) []int {
	var pids []int
	for _, f := range strings.Fields(readString(filepath.Join(dir, "cgroup.procs"))) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	return pids
}

// writeFile writes v to an existing file. Unlike os.WriteFile it does not
// ask to create the file, so a control file the kernel lacks is
// fs.ErrNotExist (cgroupfs answers O_CREAT with EACCES).
func writeFile(path, v string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(v)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func readString(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// counterFile is a control file read again and again (a peak): opened
// once, then read with pread, a third of the system calls of a ReadFile.
type counterFile struct {
	path string
	once sync.Once
	f    *os.File
}

func (c *counterFile) read() uint64 {
	c.once.Do(func() { c.f, _ = os.Open(c.path) })
	if c.f == nil {
		return 0
	}
	var buf [32]byte
	n, _ := c.f.ReadAt(buf[:], 0)
	v, _ := strconv.ParseUint(strings.TrimSpace(string(buf[:n])), 10, 64)
	return v
}

// close closes the file; call it when no read can happen any more.
func (c *counterFile) close() {
	c.once.Do(func() {}) // a later read finds no file
	if c.f != nil {
		c.f.Close()
	}
}

func readUint(path string) uint64 {
	v, _ := strconv.ParseUint(strings.TrimSpace(readString(path)), 10, 64)
	return v
}

// keyedValue is the value of "key N" in a flat-keyed control file
// (memory.events, memory.oom_control), and whether the key is there.
func keyedValue(path, key string) (uint64, bool) {
	for line := range strings.Lines(readString(path)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), key+" "); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

func hasWord(s, w string) bool {
	for _, f := range strings.Fields(s) {
		if f == w {
			return true
		}
	}
	return false
}

// removeCgroup removes an empty cgroup directory. Killed processes leave
// it a moment after they are reaped, so EBUSY is retried briefly.
func removeCgroup(dir string) error {
	var err error
	for range 50 {
		err = unix.Rmdir(dir)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	return fmt.Errorf("rmdir %s: %w", dir, err)
}
