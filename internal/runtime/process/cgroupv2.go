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

	"golang.org/x/sys/unix"
)

var (
	_ cgroupManager  = (*cgroupV2Manager)(nil)
	_ instanceCgroup = (*cgroupV2)(nil)
)

// cgroupV2Manager owns one cgroup v2 directory with the memory controller
// enabled for its children; each instance gets a child.
type cgroupV2Manager struct {
	dir  string
	pids bool // the pids controller is enabled too
}

func (m *cgroupV2Manager) mode() string { return "cgroup" }

func (m *cgroupV2Manager) logAttrs() []any { return []any{"cgroup", m.dir, "pids", m.pids} }

// detectCgroupV2 finds a place where the node may create cgroups that
// limit memory, or says why there is none. It tries, in order, a sibling
// of the node's own cgroup (the parent already delegates memory to the
// node's cgroup, so a sibling gets it too) and a child of it (possible only
// when the node's cgroup may enable controllers for children, as the root
// may). It never moves the node's own process.
func detectCgroupV2() (*cgroupV2Manager, string) {
	var st unix.Statfs_t
	if err := unix.Statfs(cgroupMount, &st); err != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
		return nil, cgroupMount + " is not a cgroup v2 (unified) mount"
	}
	own, err := ownCgroupV2()
	if err != nil {
		return nil, err.Error()
	}
	base := filepath.Join(cgroupMount, own)
	if !hasWord(readString(filepath.Join(base, "cgroup.controllers")), "memory") {
		return nil, "the memory controller is not available in " + base
	}
	name := cgroupName()
	var candidates []string
	if own != "/" {
		candidates = append(candidates, filepath.Join(filepath.Dir(base), name))
	}
	candidates = append(candidates, filepath.Join(base, name))
	var reasons []string
	for _, dir := range candidates {
		m, err := tryCgroupV2Dir(dir, base)
		if err == nil {
			return m, ""
		}
		reasons = append(reasons, err.Error())
	}
	return nil, strings.Join(reasons, "; ")
}

func tryCgroupV2Dir(dir, base string) (*cgroupV2Manager, error) {
	parent := filepath.Dir(dir)
	if parent == base && !hasWord(readString(filepath.Join(base, "cgroup.subtree_control")), "memory") {
		// Refused (EBUSY) unless base holds no process or is the root.
		if err := writeFile(filepath.Join(base, "cgroup.subtree_control"), "+memory"); err != nil {
			return nil, fmt.Errorf("enable memory for children of %s: %w", base, err)
		}
	}
	_ = sweepCgroups(parent) // best effort: leftovers only cost a directory
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	ctrl := readString(filepath.Join(dir, "cgroup.controllers"))
	if !hasWord(ctrl, "memory") {
		_ = os.Remove(dir)
		return nil, fmt.Errorf("%s has no memory controller", dir)
	}
	m := &cgroupV2Manager{dir: dir, pids: hasWord(ctrl, "pids")}
	enable := "+memory"
	if m.pids {
		enable += " +pids"
	}
	if err := writeFile(filepath.Join(dir, "cgroup.subtree_control"), enable); err != nil {
		_ = os.Remove(dir)
		return nil, fmt.Errorf("enable controllers in %s: %w", dir, err)
	}
	return m, nil
}

func ownCgroupV2() (string, error) {
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

// close removes the manager's directory and anything left in it.
func (m *cgroupV2Manager) close() error {
	if err := removeCgroupTree(m.dir); err != nil {
		return fmt.Errorf("process: remove cgroup: %w", err)
	}
	return nil
}

// cgroupV2 is one instance's cgroup.
type cgroupV2 struct {
	dir string
	fd  int // open directory, for SysProcAttr.CgroupFD; -1 once closed
}

func (m *cgroupV2Manager) create(id string, memBytes uint64, maxProcs int) (instanceCgroup, error) {
	dir := filepath.Join(m.dir, id)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	cg := &cgroupV2{dir: dir, fd: -1}
	write := func(file, v string) error { return writeFile(filepath.Join(dir, file), v) }
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

func (c *cgroupV2) cloneFD() int { return c.fd }

func (c *cgroupV2) enter(int) error { return nil } // born inside: CLONE_INTO_CGROUP

func (c *cgroupV2) kill() {
	// cgroup.kill (5.14+) kills atomically, forks included; the loop then
	// waits for the members to go. Older kernels get the loop alone.
	_ = writeFile(filepath.Join(c.dir, "cgroup.kill"), "1")
	killProcs(killWait, c.dir)
}

// peak is memory.peak (kernel 5.19+), 0 if unknown.
func (c *cgroupV2) peak() uint64 { return readUint(filepath.Join(c.dir, "memory.peak")) }

func (c *cgroupV2) oomKilled() bool {
	n, _ := keyedValue(filepath.Join(c.dir, "memory.events"), "oom_kill")
	return n > 0
}

func (c *cgroupV2) remove() error {
	if c.fd >= 0 {
		_ = unix.Close(c.fd)
		c.fd = -1
	}
	return removeCgroup(c.dir)
}
