package process

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

var (
	_ cgroupManager  = (*cgroupV1Manager)(nil)
	_ instanceCgroup = (*cgroupV1)(nil)
)

// cgroupV1Manager owns one directory of this runtime in each cgroup v1
// hierarchy it uses: memory (required), pids and freezer (when mounted and
// writable). Each instance gets a child in each.
type cgroupV1Manager struct {
	memory  string
	pids    string // "": processes are not capped
	freezer string // "": kills are not atomic (see cgroupV1.kill)
}

func (m *cgroupV1Manager) mode() string { return "cgroup-v1" }

func (m *cgroupV1Manager) logAttrs() []any {
	return []any{"memory", m.memory, "pids", m.pids, "freezer", m.freezer}
}

func (m *cgroupV1Manager) dirs() []string {
	var d []string
	for _, s := range []string{m.memory, m.pids, m.freezer} {
		if s != "" {
			d = append(d, s)
		}
	}
	return d
}

// detectCgroupV1 creates this runtime's directories in the v1 hierarchies,
// or says why it cannot. In each hierarchy the directory goes below the
// node's own cgroup, so functions stay inside whatever the node itself is
// confined to (a systemd unit's limits, a container's), or, failing that,
// at the root of the mount. Like v2, it never moves the node's own process.
func detectCgroupV1() (*cgroupV1Manager, string) {
	mounts, err := cgroupV1Mounts()
	if err != nil {
		return nil, err.Error()
	}
	own, err := ownCgroupsV1()
	if err != nil {
		return nil, err.Error()
	}
	name := cgroupName()
	m := &cgroupV1Manager{}
	m.memory, err = cgroupV1Dir(mounts, own, "memory", name)
	if err != nil {
		return nil, err.Error()
	}
	// Optional: without pids the function's processes are not capped,
	// without freezer a kill is a loop (both logged at start).
	m.pids, _ = cgroupV1Dir(mounts, own, "pids", name)
	m.freezer, _ = cgroupV1Dir(mounts, own, "freezer", name)
	return m, ""
}

// cgroupV1Mount is a mounted v1 hierarchy: where, and which cgroup of the
// hierarchy is at that place (not "/" inside some containers).
type cgroupV1Mount struct{ point, root string }

// cgroupV1Mounts maps each v1 controller to its mount, from mountinfo.
func cgroupV1Mounts() (map[string]cgroupV1Mount, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	mounts := parseCgroupV1Mounts(string(b))
	if _, ok := mounts["memory"]; !ok {
		return nil, errors.New("no cgroup v1 hierarchy with the memory controller is mounted")
	}
	return mounts, nil
}

func parseCgroupV1Mounts(mountinfo string) map[string]cgroupV1Mount {
	mounts := map[string]cgroupV1Mount{}
	for line := range strings.Lines(mountinfo) {
		// id parent maj:min root point options [optional...] - fstype source super-options
		pre, post, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(g) < 3 || g[0] != "cgroup" {
			continue
		}
		mnt := cgroupV1Mount{point: unescapeMount(f[4]), root: unescapeMount(f[3])}
		for _, opt := range strings.Split(g[2], ",") {
			if _, seen := mounts[opt]; !seen {
				mounts[opt] = mnt // the first mount of a hierarchy wins
			}
		}
	}
	return mounts
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// ownCgroupsV1 maps each v1 controller to the node's cgroup in it.
func ownCgroupsV1() (map[string]string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, fmt.Errorf("read /proc/self/cgroup: %w", err)
	}
	return parseCgroupsV1(string(b)), nil
}

func parseCgroupsV1(procCgroup string) map[string]string {
	own := map[string]string{}
	for line := range strings.Lines(procCgroup) {
		// hierarchy-id:controller,list:path
		f := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(f) != 3 || f[1] == "" {
			continue
		}
		for _, c := range strings.Split(f[1], ",") {
			own[c] = f[2]
		}
	}
	return own
}

// cgroupV1Dir creates this runtime's directory in the hierarchy of
// controller: below the node's own cgroup, else at the mount's root.
func cgroupV1Dir(mounts map[string]cgroupV1Mount, own map[string]string, controller, name string) (string, error) {
	parents := cgroupV1Parents(mounts, own, controller)
	if len(parents) == 0 {
		return "", fmt.Errorf("no cgroup v1 %s hierarchy is mounted", controller)
	}
	var reasons []string
	for _, parent := range parents {
		_ = sweepCgroups(parent) // best effort: leftovers only cost a directory
		dir := filepath.Join(parent, name)
		err := os.Mkdir(dir, 0o755)
		if err == nil || errors.Is(err, fs.ErrExist) {
			return dir, nil
		}
		reasons = append(reasons, fmt.Sprintf("create %s: %v", dir, err))
	}
	return "", errors.New(strings.Join(reasons, "; "))
}

// cgroupV1Parents are where the runtime's directory may go in the
// hierarchy of controller, best first: the node's own cgroup (its path in
// /proc/self/cgroup is from the hierarchy's root, the mount may show a
// subtree of it), then the mount's root.
func cgroupV1Parents(mounts map[string]cgroupV1Mount, own map[string]string, controller string) []string {
	mnt, ok := mounts[controller]
	if !ok {
		return nil
	}
	var parents []string
	path := own[controller]
	if path != "" && (mnt.root == "/" || path == mnt.root || strings.HasPrefix(path, mnt.root+"/")) {
		if p := filepath.Join(mnt.point, strings.TrimPrefix(path, mnt.root)); p != mnt.point {
			parents = append(parents, p)
		}
	}
	return append(parents, mnt.point)
}

// close removes the runtime's directories and anything left in them.
func (m *cgroupV1Manager) close() error {
	var errs []error
	for _, d := range m.dirs() {
		errs = append(errs, removeCgroupTree(d))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("process: remove cgroup: %w", err)
	}
	return nil
}

// cgroupV1 is one instance's cgroups, one per hierarchy the manager uses.
type cgroupV1 struct {
	memory  string
	pids    string // "" if not used
	freezer string // "" if not used
	maxUse  counterFile
}

func (m *cgroupV1Manager) create(id string, memBytes uint64, maxProcs int) (instanceCgroup, error) {
	c := &cgroupV1{}
	err := func() error {
		mk := func(parent string) (string, error) {
			if parent == "" {
				return "", nil
			}
			dir := filepath.Join(parent, id)
			return dir, os.Mkdir(dir, 0o755)
		}
		var err error
		if c.memory, err = mk(m.memory); err != nil {
			return err
		}
		c.maxUse.path = filepath.Join(c.memory, "memory.max_usage_in_bytes")
		mem := strconv.FormatUint(memBytes, 10)
		// The memory limit first: memsw may never be below it.
		if err := writeFile(filepath.Join(c.memory, "memory.limit_in_bytes"), mem); err != nil {
			return err
		}
		// memory+swap = memory: no swap, the limit is the limit. The file
		// is absent when the kernel does not account swap (swapaccount=0,
		// or no CONFIG_MEMCG_SWAP); then swap, if any, is not limited.
		if err := writeFile(filepath.Join(c.memory, "memory.memsw.limit_in_bytes"), mem); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		// v1 copies oom_kill_disable from the parent; a process over the
		// limit must be killed, not left hanging.
		_ = writeFile(filepath.Join(c.memory, "memory.oom_control"), "0")
		if c.pids, err = mk(m.pids); err != nil {
			return err
		}
		if c.pids != "" {
			if err := writeFile(filepath.Join(c.pids, "pids.max"), strconv.Itoa(maxProcs)); err != nil {
				return err
			}
		}
		c.freezer, err = mk(m.freezer)
		return err
	}()
	if err != nil {
		_ = c.remove()
		return nil, fmt.Errorf("cgroup v1: %w", err)
	}
	return c, nil
}

func (c *cgroupV1) dirs() []string {
	var d []string
	for _, s := range []string{c.memory, c.pids, c.freezer} {
		if s != "" {
			d = append(d, s)
		}
	}
	return d
}

func (c *cgroupV1) cloneFD() int { return -1 }

// enter moves a started process into each of the instance's cgroups. v1
// has no CLONE_INTO_CGROUP, so it runs for a moment outside them (see
// RATIONALE.md, Limits); memory first, as it matters most.
func (c *cgroupV1) enter(pid int) error {
	p := strconv.Itoa(pid)
	for _, d := range c.dirs() {
		if err := writeFile(filepath.Join(d, "cgroup.procs"), p); err != nil {
			return fmt.Errorf("cgroup v1: enter %s: %w", d, err)
		}
	}
	return nil
}

// freezeWait bounds the wait for a freezer cgroup to freeze. A task in an
// uninterruptible sleep holds it in FREEZING; the kill goes on regardless.
const freezeWait = 100 * time.Millisecond

// kill freezes the cgroup (when the freezer is there), SIGKILLs every
// member, thaws it, and repeats until it is empty. Frozen, no member can
// fork or exit between the read of cgroup.procs and the signal, so the kill
// catches every process and no pid can have been reused by a stranger;
// frozen tasks die once thawed. Without the freezer the loop alone catches
// what forks meanwhile in a later round.
func (c *cgroupV1) kill() {
	dirs := c.dirs()
	if len(cgroupPIDs(c.memory)) == 0 && (c.pids == "" || len(cgroupPIDs(c.pids)) == 0) {
		return // already empty (the usual case after the runtime exited)
	}
	if c.freezer != "" {
		state := filepath.Join(c.freezer, "freezer.state")
		if writeFile(state, "FROZEN") == nil {
			deadline := time.Now().Add(freezeWait)
			for strings.TrimSpace(readString(state)) != "FROZEN" && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			killProcs(0, dirs...)
			_ = writeFile(state, "THAWED")
		}
	}
	killProcs(killWait, dirs...)
}

// peak is memory.max_usage_in_bytes: like v2's memory.peak, it counts the
// page cache the instance's members caused as well as their own memory.
func (c *cgroupV1) peak() uint64 { return c.maxUse.read() }

// oomKilled reads the oom_kill counter of memory.oom_control (kernel
// 4.13+). Older kernels lack it; then any hit of the limit (failcnt) is
// taken as the cause, which can blame memory for an exit that had another.
func (c *cgroupV1) oomKilled() bool {
	if n, ok := keyedValue(filepath.Join(c.memory, "memory.oom_control"), "oom_kill"); ok {
		return n > 0
	}
	return readUint(filepath.Join(c.memory, "memory.failcnt")) > 0
}

func (c *cgroupV1) remove() error {
	c.maxUse.close()
	var errs []error
	for _, d := range c.dirs() {
		errs = append(errs, removeCgroup(d))
	}
	return errors.Join(errs...)
}
