package pool

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/runtime"
)

// Manager owns the pools of a node, one per function version. When a spec
// changes, the old pool is drained (busy instances finish, then close) and a
// new one serves further calls.
type Manager struct {
	cfg      Config
	runtimes map[string]runtime.Runtime

	mu    sync.RWMutex
	pools map[string]*Pool
	stop  chan struct{}
	done  chan struct{}
	wg    sync.WaitGroup
}

// NewManager returns a manager for the given runtimes, keyed by runtime name.
func NewManager(cfg Config, runtimes map[string]runtime.Runtime) *Manager {
	if cfg.QueueTimeout == 0 {
		cfg.QueueTimeout = 100 * time.Millisecond
	}
	if cfg.Prestart == 0 {
		cfg.Prestart = 2
	}
	if cfg.ReapInterval == 0 {
		cfg.ReapInterval = time.Second
	}
	return &Manager{cfg: cfg, runtimes: runtimes, pools: map[string]*Pool{}, stop: make(chan struct{}), done: make(chan struct{})}
}

func key(spec *function.Spec) string { return spec.Name + ":" + spec.Version }

// Pool returns the pool that runs spec, making it when needed.
func (m *Manager) Pool(spec *function.Spec) (*Pool, error) {
	k := key(spec)
	m.mu.RLock()
	p := m.pools[k]
	m.mu.RUnlock()
	if p != nil && p.runs(spec) {
		return p, nil
	}
	rt, ok := m.runtimes[spec.Runtime]
	if !ok {
		return nil, fmt.Errorf("runtime %q is not enabled on this node: %w", spec.Runtime, function.ErrUnavailable)
	}
	m.mu.Lock()
	p = m.pools[k]
	if p != nil && p.runs(spec) {
		m.mu.Unlock()
		return p, nil
	}
	old := p
	p = newPool(spec, rt, &m.cfg)
	m.pools[k] = p
	m.mu.Unlock()
	if old != nil {
		m.retire(old)
	}
	p.refill()
	return p, nil
}

// runs reports whether p runs spec: the same spec, or an equal one (a
// re-saved spec, timestamps aside). The last equal pointer is remembered,
// as comparing field by field on every invocation costs more than the
// rest of the lookup.
func (p *Pool) runs(spec *function.Spec) bool {
	if p.spec == spec || p.equal.Load() == spec {
		return true
	}
	if sameConfig(p.spec, spec) {
		p.equal.Store(spec)
		return true
	}
	return false
}

// sameConfig reports whether two specs run the same way (timestamps aside).
func sameConfig(a, b *function.Spec) bool {
	x, y := *a, *b
	x.Created, x.Updated = y.Created, y.Updated
	return reflect.DeepEqual(x, y)
}

// Update is the registry's change hook: it retires the pool of a deleted or
// changed function and starts min instances of the new spec.
func (m *Manager) Update(name string, spec *function.Spec) {
	if spec == nil {
		// name is a function (all its pools go) or NAME:VERSION (one goes).
		fn, version, one := strings.Cut(name, ":")
		m.mu.Lock()
		var victims []*Pool
		for k, p := range m.pools {
			if p.spec.Name == fn && (!one || p.spec.Version == version) {
				victims = append(victims, p)
				delete(m.pools, k)
			}
		}
		m.mu.Unlock()
		for _, p := range victims {
			m.retire(p)
		}
		return
	}
	m.Pool(spec) //nolint:errcheck // an unknown runtime is reported on invoke
}

func (m *Manager) retire(p *Pool) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(p.spec.Timeout)+10*time.Second)
		defer cancel()
		p.close(ctx)
	}()
}

// Start runs the idle reaper.
func (m *Manager) Start(ctx context.Context) error {
	go func() {
		defer close(m.done)
		t := time.NewTicker(m.cfg.ReapInterval)
		defer t.Stop()
		for {
			select {
			case <-m.stop:
				return
			case now := <-t.C:
				for _, p := range m.Pools() {
					p.reap(now)
				}
			}
		}
	}()
	return nil
}

// Pools returns every live pool.
func (m *Manager) Pools() []*Pool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]*Pool, 0, len(m.pools))
	for _, p := range m.pools {
		out = append(out, p)
	}
	return out
}

// Lookup returns the live pool of a function version, if any.
func (m *Manager) Lookup(name, version string) *Pool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.pools[name+":"+version]
}

// Stop closes every pool, letting busy instances finish within ctx.
func (m *Manager) Stop(ctx context.Context) error {
	close(m.stop)
	<-m.done
	m.mu.Lock()
	pools := m.pools
	m.pools = map[string]*Pool{}
	m.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range pools {
		wg.Add(1)
		go func() { defer wg.Done(); p.close(ctx) }()
	}
	wg.Wait()
	m.wg.Wait()
	return nil
}
