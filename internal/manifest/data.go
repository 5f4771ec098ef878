package manifest

import (
	"errors"
	"sort"

	"github.com/nimbus-run/nimbus/internal/function"
)

// Table declares a table: `tables: {orders: {key: customer, sort: created, ttl: expires_at}}`.
type Table struct {
	// Key is the partition key attribute (required); Sort the optional
	// sort key; TTL the attribute holding items' expiry in epoch seconds.
	Key  string `yaml:"key"`
	Sort string `yaml:"sort"`
	TTL  string `yaml:"ttl"`
	// History is the revisions kept per item (1 to 64, default 8).
	History int `yaml:"history"`
}

// Bucket declares a bucket: `buckets: {avatars: {}}`. It has no settings
// yet; the mapping leaves room for them.
type Bucket struct{}

func (m *Manifest) hasData() bool { return len(m.Tables) > 0 || len(m.Buckets) > 0 }

// TableNames and BucketNames return the declared names in order.
func (m *Manifest) TableNames() []string { return sortedKeys(m.Tables) }

// BucketNames returns the declared bucket names in order.
func (m *Manifest) BucketNames() []string { return sortedKeys(m.Buckets) }

func sortedKeys[V any](mp map[string]V) []string {
	out := make([]string, 0, len(mp))
	for k := range mp {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Names of tables and buckets follow package data's rules, which package
// function repeats for `uses` (the manifest must not import the engine).
func (m *Manifest) validateData() error {
	for _, name := range m.TableNames() {
		t := m.Tables[name]
		path := "tables." + name
		if err := (&function.Uses{Tables: []string{name}}).Validate(); err != nil {
			return &Error{Path: path, Msg: "not a valid table name: use 1 to 64 letters, digits, '-' or '_'"}
		}
		if t == nil || t.Key == "" {
			return &Error{Path: path + ".key", Msg: "is required: the partition key attribute"}
		}
		if t.Sort != "" && t.Sort == t.Key {
			return &Error{Path: path + ".sort", Msg: "must differ from key"}
		}
		if t.TTL != "" && (t.TTL == t.Key || t.TTL == t.Sort) {
			return &Error{Path: path + ".ttl", Msg: "cannot be a key attribute"}
		}
		if t.History < 0 || t.History > 64 {
			return &Error{Path: path + ".history", Msg: "is out of range: use 1 to 64"}
		}
	}
	for _, name := range m.BucketNames() {
		if p := function.BucketNameProblem(name); p != "" {
			return &Error{Path: "buckets." + name, Msg: "not a valid bucket name: " + p}
		}
	}
	for _, name := range m.Names() {
		f := m.Functions[name]
		if f == nil || f.Uses == nil {
			continue
		}
		if err := f.Uses.Validate(); err != nil {
			var fe *function.FieldError
			if errors.As(err, &fe) {
				return &Error{Path: "functions." + name + "." + fe.Field, Msg: fe.Reason}
			}
			return &Error{Path: "functions." + name + ".uses", Msg: err.Error()}
		}
	}
	return nil
}
