package process

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
// run yet beyond its loader) and cgroups, where available, close it: there
// the child is born inside its cgroup (clone3 CLONE_INTO_CGROUP).
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

const cgroupMount = "/sys/fs/cgroup"

// cgroupManager owns one cgroup v2 directory with the memory controller
// enabled for its children; each instance gets a child.
type cgroupManager struct {
	dir  string
	pids bool // the pids controller is enabled too
}

// detectCgroups finds a place where the node may create cgroups that limit
// memory, or says why there is none. It tries, in order, a sibling of the
// node's own cgroup (the parent already delegates memory to the node's
// cgroup, so a sibling gets it too) and a child of it (possible only when
// the node's cgroup may enable controllers for children, as the root may).
// It never moves the node's own process.
func detectCgroups() (*cgroupManager, string) {
	var st unix.Statfs_t
	if err := unix.Statfs(cgroupMount, &st); err != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
		return nil, cgroupMount + " is not a cgroup v2 (unified) mount"
	}
	own, err := ownCgroup()
	if err != nil {
		return nil, err.Error()
	}
	base := filepath.Join(cgroupMount, own)
	if !hasWord(readString(filepath.Join(base, "cgroup.controllers")), "memory") {
		return nil, "the memory controller is not available in " + base
	}
	name := fmt.Sprintf("nimbus-%d", os.Getpid())
	var candidates []string
	if own != "/" {
		candidates = append(candidates, filepath.Join(filepath.Dir(base), name))
	}
	candidates = append(candidates, filepath.Join(base, name))
	var reasons []string
	for _, dir := range candidates {
		m, err := tryCgroupDir(dir, base)
		if err == nil {
			return m, ""
		}
		reasons = append(reasons, err.Error())
	}
	return nil, strings.Join(reasons, "; ")
}

func tryCgroupDir(dir, base string) (*cgroupManager, error) {
	parent := filepath.Dir(dir)
	if parent == base && !hasWord(readString(filepath.Join(base, "cgroup.subtree_control")), "memory") {
		// Refused (EBUSY) unless base holds no process or is the root.
		if err := os.WriteFile(filepath.Join(base, "cgroup.subtree_control"), []byte("+memory"), 0); err != nil {
			return nil, fmt.Errorf("enable memory for children of %s: %w", base, err)
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	ctrl := readString(filepath.Join(dir, "cgroup.controllers"))
	if !hasWord(ctrl, "memory") {
		_ = os.Remove(dir)
		return nil, fmt.Errorf("%s has no memory controller", dir)
	}
	m := &cgroupManager{dir: dir, pids: hasWord(ctrl, "pids")}
	enable := "+memory"
	if m.pids {
		enable += " +pids"
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte(enable), 0); err != nil {
		_ = os.Remove(dir)
		return nil, fmt.Errorf("enable controllers in %s: %w", dir, err)
	}
	return m, nil
}

func ownCgroup() (string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", fmt.Errorf("read /proc/self/cgroup: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if p, ok := strings.CutPrefix(sc.Text(), "0::"); ok {
			return p, nil
		}
	}
	return "", errors.New("the node is in no cgroup v2 hierarchy")
}

func readString(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

func hasWord(s, w string) bool {
	for _, f := range strings.Fields(s) {
		if f == w {
			return true
		}
	}
	return false
}

// close removes the manager's directory (its children must be gone).
func (m *cgroupManager) close() error {
	if err := removeCgroup(m.dir); err != nil {
		return fmt.Errorf("process: remove cgroup: %w", err)
	}
	return nil
}

// cgroup is one instance's cgroup.
type cgroup struct {
	dir string
	fd  int // open directory, for SysProcAttr.CgroupFD; -1 once closed
}

func (m *cgroupManager) create(id string, memBytes uint64, maxProcs int) (*cgroup, error) {
	dir := filepath.Join(m.dir, id)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	cg := &cgroup{dir: dir, fd: -1}
	write := func(file, v string) error {
		return os.WriteFile(filepath.Join(dir, file), []byte(v), 0)
	}
	err := write("memory.max", strconv.FormatUint(memBytes, 10))
	if err == nil {
		// Without swap the limit is the limit. The file is absent when the
		// kernel has no swap accounting; that is fine.
		if e := write("memory.swap.max", "0"); e != nil && !errors.Is(e, fs.ErrNotExist) {
			err = e
		}
	}
	if err == nil && m.pids {
		err = write("pids.max", strconv.Itoa(maxProcs))
	}
	if err == nil {
		cg.fd, err = unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		_ = cg.remove()
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	return cg, nil
}

// kill kills every process in the cgroup, including any that left the
// process group.
func (c *cgroup) kill() {
	if err := os.WriteFile(filepath.Join(c.dir, "cgroup.kill"), []byte("1"), 0); err == nil {
		return
	}
	// Kernels before 5.14 have no cgroup.kill.
	for _, f := range strings.Fields(readString(filepath.Join(c.dir, "cgroup.procs"))) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
	}
}

// peak is memory.peak (kernel 5.19+), 0 if unknown.
func (c *cgroup) peak() uint64 {
	v, _ := strconv.ParseUint(strings.TrimSpace(readString(filepath.Join(c.dir, "memory.peak"))), 10, 64)
	return v
}

// oomKilled reports whether the kernel killed a process of the cgroup for
// exceeding memory.max.
func (c *cgroup) oomKilled() bool {
	for line := range strings.Lines(readString(filepath.Join(c.dir, "memory.events"))) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "oom_kill "); ok {
			n, _ := strconv.Atoi(v)
			return n > 0
		}
	}
	return false
}

func (c *cgroup) remove() error {
	if c.fd >= 0 {
		_ = unix.Close(c.fd)
		c.fd = -1
	}
	return removeCgroup(c.dir)
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
