package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nimbus-run/nimbus/internal/function"
)

// Versions and aliases live in their own bucket, keyed NAME.v.N and
// NAME.a.ALIAS, so a watch of the functions bucket sees only $LATEST specs.
const versionsBucket = "nimbus_versions"

func versionKey(name, v string) string   { return name + ".v." + v }
func aliasKey(name, alias string) string { return name + ".a." + alias }
func parseKey(k string) (name, kind, id string, ok bool) {
	parts := strings.SplitN(k, ".", 3)
	if len(parts) != 3 || (parts[1] != "v" && parts[1] != "a") {
		return "", "", "", false
	}
	return parts[0], parts[1], parts[2], true
}

func (r *Registry) startVersions(ctx context.Context) error {
	kv, err := r.st.KV(ctx, jetstream.KeyValueConfig{
		Bucket: versionsBucket, Description: "published versions and aliases", History: 1,
		Storage: jetstream.FileStorage,
	})
	if err != nil {
		return err
	}
	r.vkv = kv
	w, err := kv.WatchAll(context.WithoutCancel(ctx))
	if err != nil {
		return fmt.Errorf("registry: watch versions: %w", err)
	}
	r.vwatcher = w
	for e := range w.Updates() {
		if e == nil {
			break
		}
		r.applyVersion(e)
	}
	go func() {
		defer close(r.vdone)
		for e := range w.Updates() {
			if e != nil {
				r.applyVersion(e)
			}
		}
	}()
	return nil
}

func (r *Registry) applyVersion(e jetstream.KeyValueEntry) {
	name, kind, id, ok := parseKey(e.Key())
	if !ok {
		return
	}
	del := e.Operation() != jetstream.KeyValuePut
	r.mu.Lock()
	defer r.mu.Unlock()
	switch kind {
	case "v":
		if del {
			delete(r.versions[name], id)
			return
		}
		var s function.Spec
		if json.Unmarshal(e.Value(), &s) != nil {
			return
		}
		if r.versions[name] == nil {
			r.versions[name] = map[string]*function.Spec{}
		}
		r.versions[name][id] = &s
	case "a":
		if del {
			delete(r.aliases[name], id)
			return
		}
		var a function.Alias
		if json.Unmarshal(e.Value(), &a) != nil {
			return
		}
		if r.aliases[name] == nil {
			r.aliases[name] = map[string]*function.Alias{}
		}
		r.aliases[name][id] = &a
	}
}

// Resolve returns the spec a qualifier selects: $LATEST (or empty), a
// version number, or an alias (choosing between its versions by weight).
func (r *Registry) Resolve(name, qualifier string) (*function.Spec, error) {
	if qualifier == "" || qualifier == function.LatestVersion {
		return r.Get(name)
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if _, ok := r.specs[name]; !ok {
		return nil, fmt.Errorf("%q: %w", name, function.ErrNotFound)
	}
	if function.ValidVersion(qualifier) {
		if s := r.versions[name][qualifier]; s != nil {
			return s, nil
		}
		return nil, fmt.Errorf("%s version %s: %w", name, qualifier, function.ErrNotFound)
	}
	a := r.aliases[name][qualifier]
	if a == nil {
		return nil, fmt.Errorf("%s alias %q: %w", name, qualifier, function.ErrNotFound)
	}
	v := a.Version
	if len(a.Weights) > 0 {
		x := rand.Float64()
		for wv, w := range a.Weights {
			if x < w {
				v = wv
				break
			}
			x -= w
		}
	}
	s := r.versions[name][v]
	if s == nil {
		return nil, fmt.Errorf("%s alias %s points at missing version %s: %w", name, qualifier, v, function.ErrNotFound)
	}
	return s, nil
}

// Versions returns a function's published versions, oldest first.
func (r *Registry) Versions(name string) ([]*function.Spec, error) {
	if _, err := r.Get(name); err != nil {
		return nil, err
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]*function.Spec, 0, len(r.versions[name]))
	for _, s := range r.versions[name] {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return vnum(out[i].Version) < vnum(out[j].Version) })
	return out, nil
}

// Aliases returns a function's aliases by name.
func (r *Registry) Aliases(name string) ([]*function.Alias, error) {
	if _, err := r.Get(name); err != nil {
		return nil, err
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]*function.Alias, 0, len(r.aliases[name]))
	for _, a := range r.aliases[name] {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func vnum(v string) int { n, _ := strconv.Atoi(v); return n }

// Publish freezes $LATEST into the next version number. When $LATEST is
// unchanged since the newest version, that version is returned (as Lambda
// does) and created is false.
func (r *Registry) Publish(ctx context.Context, name string) (spec *function.Spec, created bool, err error) {
	latest, err := r.Get(name)
	if err != nil {
		return nil, false, err
	}
	versions, _ := r.Versions(name)
	next := 1
	if len(versions) > 0 {
		newest := versions[len(versions)-1]
		if sameCode(newest, latest) {
			return newest, false, nil
		}
		next = vnum(newest.Version) + 1
	}
	v := *latest
	v.Version = strconv.Itoa(next)
	v.Created = time.Now().UTC()
	v.Updated = v.Created
	b, _ := json.Marshal(&v)
	if _, err := r.vkv.Create(ctx, versionKey(name, v.Version), b); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return nil, false, fmt.Errorf("publish %s: version %s was published concurrently, try again: %w", name, v.Version, function.ErrConflict)
		}
		return nil, false, fmt.Errorf("publish %s: %w", name, err)
	}
	r.mu.Lock()
	if r.versions[name] == nil {
		r.versions[name] = map[string]*function.Spec{}
	}
	r.versions[name][v.Version] = &v
	r.mu.Unlock()
	return &v, true, nil
}

// sameCode reports whether a version froze exactly what $LATEST is now.
func sameCode(version, latest *function.Spec) bool {
	a, b := *version, *latest
	a.Version, a.Created, a.Updated = "", time.Time{}, time.Time{}
	b.Version, b.Created, b.Updated = "", time.Time{}, time.Time{}
	return reflect.DeepEqual(normalizedEnv(a), normalizedEnv(b))
}

// DeleteVersion removes a published version unless an alias points at it.
func (r *Registry) DeleteVersion(ctx context.Context, name, version string) error {
	if _, err := r.Resolve(name, version); err != nil || !function.ValidVersion(version) {
		if err == nil {
			err = function.Invalid("version", "%q is not a version number", version)
		}
		return err
	}
	aliases, _ := r.Aliases(name)
	for _, a := range aliases {
		if _, weighted := a.Weights[version]; a.Version == version || weighted {
			return fmt.Errorf("version %s of %s is used by alias %q: point the alias elsewhere first: %w", version, name, a.Name, function.ErrConflict)
		}
	}
	if err := r.vkv.Delete(ctx, versionKey(name, version)); err != nil {
		return fmt.Errorf("delete %s version %s: %w", name, version, err)
	}
	r.mu.Lock()
	delete(r.versions[name], version)
	r.mu.Unlock()
	r.notify(name+":"+version, nil)
	return nil
}

// PutAlias creates or moves an alias.
func (r *Registry) PutAlias(ctx context.Context, a function.Alias) (*function.Alias, Change, error) {
	if _, err := r.Get(a.Function); err != nil {
		return nil, "", err
	}
	r.mu.RLock()
	vs := r.versions[a.Function]
	exists := func(v string) bool { return vs[v] != nil }
	old := r.aliases[a.Function][a.Name]
	err := a.Validate(exists)
	r.mu.RUnlock()
	if err != nil {
		return nil, "", err
	}
	if len(a.Weights) == 0 {
		a.Weights = nil
	}
	change := Created
	if old != nil {
		if old.Version == a.Version && reflect.DeepEqual(old.Weights, a.Weights) && old.Description == a.Description {
			return old, Unchanged, nil
		}
		change = Updated
	}
	a.Updated = time.Now().UTC()
	b, _ := json.Marshal(&a)
	if _, err := r.vkv.Put(ctx, aliasKey(a.Function, a.Name), b); err != nil {
		return nil, "", fmt.Errorf("alias %s: %w", a.Name, err)
	}
	r.mu.Lock()
	if r.aliases[a.Function] == nil {
		r.aliases[a.Function] = map[string]*function.Alias{}
	}
	r.aliases[a.Function][a.Name] = &a
	r.mu.Unlock()
	return &a, change, nil
}

// DeleteAlias removes an alias.
func (r *Registry) DeleteAlias(ctx context.Context, name, alias string) error {
	r.mu.RLock()
	a := r.aliases[name][alias]
	r.mu.RUnlock()
	if a == nil {
		return fmt.Errorf("%s alias %q: %w", name, alias, function.ErrNotFound)
	}
	if err := r.vkv.Delete(ctx, aliasKey(name, alias)); err != nil {
		return fmt.Errorf("delete alias %s: %w", alias, err)
	}
	r.mu.Lock()
	delete(r.aliases[name], alias)
	r.mu.Unlock()
	return nil
}

// deleteVersions removes every version and alias of a deleted function.
func (r *Registry) deleteVersions(ctx context.Context, name string) []string {
	r.mu.Lock()
	var digests []string
	var keys []string
	for v, s := range r.versions[name] {
		keys = append(keys, versionKey(name, v))
		digests = append(digests, s.Code)
	}
	for a := range r.aliases[name] {
		keys = append(keys, aliasKey(name, a))
	}
	delete(r.versions, name)
	delete(r.aliases, name)
	r.mu.Unlock()
	for _, k := range keys {
		if err := r.vkv.Delete(ctx, k); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			r.log.Warn("registry: version not removed", "key", k, "err", err)
		}
	}
	return digests
}
