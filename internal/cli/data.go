package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/manifest"
)

// deployData applies a manifest's tables and buckets, before its functions
// (whose specs name them in uses, and whose triggers read them).
func deployData(ctx context.Context, e *env, m *manifest.Manifest) error {
	c := e.client()
	for _, name := range m.TableNames() {
		t := m.Tables[name]
		res, err := c.PutTable(ctx, &api.Table{Name: name, Key: t.Key, Sort: t.Sort, TTL: t.TTL, History: t.History})
		if err != nil {
			return fmt.Errorf("tables.%s: %w", name, err)
		}
		if !e.json() {
			fmt.Fprintf(e.stdout, "%-9s table %s (key %s%s)\n", res.Change, name, t.Key, ifSet(", sort ", t.Sort))
		}
	}
	for _, name := range m.BucketNames() {
		res, err := c.PutBucket(ctx, name)
		if err != nil {
			return fmt.Errorf("buckets.%s: %w", name, err)
		}
		if !e.json() {
			fmt.Fprintf(e.stdout, "%-9s bucket %s\n", res.Change, name)
		}
	}
	return nil
}

func ifSet(prefix, v string) string {
	if v == "" {
		return ""
	}
	return prefix + v
}

func newTable(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "table",
		Short: "Manage tables and their items",
		Long: `Tables hold JSON items under a partition key and an optional sort key.
Keys are JSON objects of the key attributes, e.g. '{"customer":"c1","created":"2024-05-01"}'.`,
	}
	cmd.AddCommand(newTableLs(e), newTableCreate(e), newTableRm(e), newTablePut(e), newTableGet(e),
		newTableDel(e), newTableQuery(e), newTableScan(e), newTableChanges(e))
	return cmd
}

func newTableLs(e *env) *cobra.Command {
	return &cobra.Command{
		Use: "ls", Short: "List tables", Args: cobra.NoArgs,
		Example: "  nimbus table ls\n  nimbus table ls -o json",
		RunE: func(cmd *cobra.Command, args []string) error {
			ts, err := e.client().ListTables(cmd.Context())
			if err != nil {
				return err
			}
			if e.json() {
				return e.printJSON(ts)
			}
			w := e.table()
			fmt.Fprintln(w, "NAME\tKEY\tSORT\tTTL\tSTORED\tCREATED")
			for _, t := range ts {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", t.Name, t.Key, dash(t.Sort), dash(t.TTL), humanBytes64(int64(t.StoredBytes)), ago(t.Created))
			}
			return w.Flush()
		},
	}
}

func newTableCreate(e *env) *cobra.Command {
	var t api.Table
	cmd := &cobra.Command{
		Use: "create NAME --key ATTR [--sort ATTR] [--ttl ATTR]", Short: "Create a table (or apply changes to one)", Args: cobra.ExactArgs(1),
		Example: "  nimbus table create orders --key customer --sort created --ttl expires_at",
		RunE: func(cmd *cobra.Command, args []string) error {
			t.Name = args[0]
			if t.Key == "" {
				return usagef("--key is required: the partition key attribute")
			}
			res, err := e.client().PutTable(cmd.Context(), &t)
			if err != nil {
				return err
			}
			if e.json() {
				return e.printJSON(res)
			}
			fmt.Fprintf(e.stdout, "%s table %s\n", res.Change, t.Name)
			return nil
		},
	}
	cmd.Flags().StringVar(&t.Key, "key", "", "partition key attribute (required)")
	cmd.Flags().StringVar(&t.Sort, "sort", "", "sort key attribute")
	cmd.Flags().StringVar(&t.TTL, "ttl", "", "attribute holding items' expiry (epoch seconds)")
	cmd.Flags().IntVar(&t.History, "history", 0, "revisions kept per item, 1 to 64 (default 8)")
	return cmd
}

func newTableRm(e *env) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use: "rm NAME", Short: "Delete a table (--force when it holds items)", Args: cobra.ExactArgs(1),
		Example: "  nimbus table rm orders\n  nimbus table rm orders --force   # it holds items",
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := e.client().DeleteTable(cmd.Context(), args[0], force); err != nil {
				return err
			}
			if !e.json() {
				fmt.Fprintf(e.stdout, "deleted table %s\n", args[0])
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "delete the table even if it holds items")
	return cmd
}

// jsonArg reads a JSON argument: inline, "@file", or "-" for stdin.
func jsonArg(e *env, s, what string) (json.RawMessage, error) {
	b, err := readData(e, s)
	if err != nil {
		return nil, err
	}
	if !json.Valid(b) {
		return nil, usagef("%s is not valid JSON", what)
	}
	return b, nil
}

func newTablePut(e *env) *cobra.Command {
	var req api.PutItemRequest
	cmd := &cobra.Command{
		Use: "put TABLE ITEM", Short: "Store an item (ITEM is JSON, @file or -)", Args: cobra.ExactArgs(2),
		Example: `  nimbus table put orders '{"customer":"c1","created":"2024-05-01","total":42}'`,
		RunE: func(cmd *cobra.Command, args []string) error {
			item, err := jsonArg(e, args[1], "the item")
			if err != nil {
				return err
			}
			req.Item = item
			rev, err := e.client().PutItem(cmd.Context(), args[0], &req)
			if err != nil {
				return err
			}
			if e.json() {
				return e.printJSON(api.PutItemResult{Revision: rev})
			}
			fmt.Fprintf(e.stdout, "revision %d\n", rev)
			return nil
		},
	}
	cmd.Flags().BoolVar(&req.IfAbsent, "if-absent", false, "only if no item has this key")
	cmd.Flags().Uint64Var(&req.IfRevision, "if-revision", 0, "only if the stored item has this revision")
	return cmd
}

func newTableGet(e *env) *cobra.Command {
	return &cobra.Command{
		Use: "get TABLE KEY [SORT]", Short: "Read an item by key (a JSON object, or the key's values)", Args: cobra.RangeArgs(2, 3),
		Example: `  nimbus table get orders c1 2024-05-01
  nimbus table get orders '{"customer":"c1","created":"2024-05-01"}'`,
		RunE: func(cmd *cobra.Command, args []string) error {
			key, err := itemKeyArg(cmd, e, args)
			if err != nil {
				return err
			}
			en, err := e.client().GetItem(cmd.Context(), args[0], key)
			if err != nil {
				return err
			}
			if e.json() {
				return e.printJSON(en)
			}
			fmt.Fprintf(e.stdout, "%s\n", en.Item)
			fmt.Fprintf(e.stderr, "revision %d\n", en.Revision)
			return nil
		},
	}
}

func newTableDel(e *env) *cobra.Command {
	var ifRev uint64
	cmd := &cobra.Command{
		Use: "del TABLE KEY [SORT]", Short: "Delete an item by key (a JSON object, or the key's values)", Args: cobra.RangeArgs(2, 3),
		Example: `  nimbus table del orders c1 2024-05-01
  nimbus table del orders '{"customer":"c1","created":"2024-05-01"}' --if-revision 7`,
		RunE: func(cmd *cobra.Command, args []string) error {
			key, err := itemKeyArg(cmd, e, args)
			if err != nil {
				return err
			}
			return e.client().DeleteItem(cmd.Context(), args[0], key, ifRev)
		},
	}
	cmd.Flags().Uint64Var(&ifRev, "if-revision", 0, "only if the stored item has this revision")
	return cmd
}

// itemKeyArg reads the key of an item of table args[0]: args[1] a JSON
// object of the key attributes (inline, @file or -), or the partition
// key's value and args[2] the sort key's, which the table's description
// names.
func itemKeyArg(cmd *cobra.Command, e *env, args []string) (json.RawMessage, error) {
	if s := strings.TrimSpace(args[1]); len(args) == 2 && (strings.HasPrefix(s, "{") || s == "-" || strings.HasPrefix(s, "@")) {
		return jsonArg(e, args[1], "the key")
	}
	t, err := e.client().GetTable(cmd.Context(), args[0])
	if err != nil {
		return nil, err
	}
	switch {
	case t.Sort != "" && len(args) == 2:
		return nil, usagef("table %s has a sort key (%s): give its value too, as in: %s %s %s VALUE", t.Name, t.Sort, cmd.CommandPath(), t.Name, args[1])
	case t.Sort == "" && len(args) == 3:
		return nil, usagef("table %s has no sort key: give only the value of its key, %s", t.Name, t.Key)
	}
	key := map[string]json.RawMessage{t.Key: keyValueArg(args[1])}
	if t.Sort != "" {
		key[t.Sort] = keyValueArg(args[2])
	}
	return json.Marshal(key)
}

// keyValueArg reads a key value: JSON when it is a JSON string or number,
// else the text itself (so `c1` and `'"42"'` are strings, `42` a number).
func keyValueArg(s string) json.RawMessage {
	if _, err := strconv.ParseFloat(s, 64); err == nil && json.Valid([]byte(s)) {
		return json.RawMessage(s)
	}
	if strings.HasPrefix(s, `"`) && json.Valid([]byte(s)) {
		return json.RawMessage(s)
	}
	b, _ := json.Marshal(s)
	return b
}

func printPage(e *env, p *api.Page) {
	for _, it := range p.Items {
		fmt.Fprintf(e.stdout, "%s\n", it.Item)
	}
}

func newTableQuery(e *env) *cobra.Command {
	var q api.QueryRequest
	var all bool
	cmd := &cobra.Command{
		Use: "query TABLE PARTITION", Short: "Read items of one partition in sort key order", Args: cobra.ExactArgs(2),
		Example: `  nimbus table query orders c1 --where '>= "2024-05"' --limit 10
  nimbus table query orders c1 --where 'created between "2024-01" and "2024-02"' --reverse`,
		RunE: func(cmd *cobra.Command, args []string) error {
			q.Partition = keyValueArg(args[1])
			return pages(e, all, q.Cursor, func(cursor string) (*api.Page, error) {
				q.Cursor = cursor
				return e.client().Query(cmd.Context(), args[0], &q)
			})
		},
	}
	cmd.Flags().StringVar(&q.Where, "where", "", `sort key condition: = < <= > >= VALUE, between A and B, begins_with "prefix"`)
	cmd.Flags().BoolVar(&q.Reverse, "reverse", false, "descending sort key order")
	cmd.Flags().IntVar(&q.Limit, "limit", 0, "items per page (default 100, at most 1000)")
	cmd.Flags().StringVar(&q.Cursor, "cursor", "", "continue after a previous page")
	cmd.Flags().BoolVar(&all, "all", false, "follow cursors to the end")
	return cmd
}

func newTableScan(e *env) *cobra.Command {
	var limit int
	var cursor string
	var all bool
	cmd := &cobra.Command{
		Use: "scan TABLE", Short: "Read every item of a table, a page at a time", Args: cobra.ExactArgs(1),
		Example: "  nimbus table scan orders --limit 50\n  nimbus table scan orders --all -o json > orders.json",
		RunE: func(cmd *cobra.Command, args []string) error {
			return pages(e, all, cursor, func(c string) (*api.Page, error) {
				return e.client().Scan(cmd.Context(), args[0], limit, c)
			})
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 0, "items per page (default 100, at most 1000)")
	cmd.Flags().StringVar(&cursor, "cursor", "", "continue after a previous page")
	cmd.Flags().BoolVar(&all, "all", false, "follow cursors to the end")
	return cmd
}

func newTableChanges(e *env) *cobra.Command {
	var from string
	var limit int
	var follow bool
	cmd := &cobra.Command{
		Use: "changes TABLE", Short: "Read a table's change stream (INSERT, MODIFY, REMOVE), from a revision or a time", Args: cobra.ExactArgs(1),
		Long: "A table's changes, in revision order, with their keys and images, as table triggers get them.\n" +
			"The table keeps each item's last revisions (its history), so an item's older changes may be gone.\n" +
			"--follow prints each change as it is made (the node holds each request up to 20 s until one comes),\n" +
			"and rides out a node that restarts or is unreachable for a while, asking again every second.",
		Example: "  nimbus table changes orders                         # from the oldest kept\n" +
			"  nimbus table changes orders --from 2026-11-29T09:00:00Z --limit 20\n" +
			"  nimbus table changes orders --from 1042 --follow -o json   # then every change as it comes, one JSON per line",
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, _, _, err := api.ParseStart(from); err != nil || from == "new" {
				return usagef("--from %q: use oldest, a revision (1, 2, ...) or an RFC 3339 time", from)
			}
			c, table := e.client(), args[0]
			for {
				n, wait := limit, time.Duration(0)
				if follow {
					n, wait = maxChanges, followWait
				}
				asked := time.Now()
				p, err := c.TableChangesWait(cmd.Context(), table, from, n, wait)
				if err != nil {
					if follow && cmd.Context().Err() != nil {
						return nil // interrupted
					}
					if !follow || !passing(err) {
						return err
					}
					// A node restarting, or between nodes: wait and ask again.
					fmt.Fprintf(e.stderr, "changes: %v; asking again in %v\n", err, followRetry)
					if !pause(cmd.Context(), followRetry) {
						return nil
					}
					continue
				}
				switch {
				case e.json() && !follow:
					return e.printJSON(p)
				case e.json():
					for _, ch := range p.Changes {
						b, _ := json.Marshal(ch)
						fmt.Fprintf(e.stdout, "%s\n", b)
					}
				default:
					for _, ch := range p.Changes {
						printChange(e, &ch)
					}
				}
				if p.Next != 0 {
					from = strconv.FormatUint(p.Next, 10)
				}
				if !follow {
					if p.Next != 0 && (limit == 0 && len(p.Changes) == defaultChanges || len(p.Changes) == limit) {
						fmt.Fprintf(e.stderr, "more: --from %s\n", from)
					}
					return nil
				}
				// The node waited for a change (a long poll); one that answers
				// an empty page at once (a node that predates waiting) is
				// asked again after a pause.
				if len(p.Changes) == 0 && time.Since(asked) < followWait/2 && !pause(cmd.Context(), followEvery) {
					return nil
				}
			}
		},
	}
	cmd.Flags().StringVar(&from, "from", "oldest", "where to begin: oldest, a revision, or an RFC 3339 time")
	cmd.Flags().IntVar(&limit, "limit", 0, "changes to read (default 100, at most 1000)")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "then print each change as it comes, until interrupted")
	return cmd
}

// The node's page sizes of changes (GET /api/v1/tables/{t}/changes).
const defaultChanges, maxChanges = 100, 1000

// followRetry is how long table changes --follow waits after a failure
// that may pass (passing).
const followRetry = time.Second

// passing reports whether err may pass on its own: the node unreachable
// or unavailable (restarting, a load balancer between nodes), not an
// answer that something is wrong with the request.
func passing(err error) bool {
	var ae *api.Error
	if !errors.As(err, &ae) {
		return true
	}
	return ae.Status == http.StatusServiceUnavailable || ae.Status == http.StatusBadGateway || ae.Status == http.StatusGatewayTimeout
}

// followWait is how long the node holds a request of table changes
// --follow that finds no change, waiting for one; followEvery is how often
// --follow asks a node that answers at once.
const (
	followWait  = 20 * time.Second
	followEvery = 500 * time.Millisecond
)

func printChange(e *env, ch *api.TableChange) {
	keys, _ := json.Marshal(ch.Keys)
	fmt.Fprintf(e.stdout, "#%d %s %-6s %s", ch.Revision, ch.Time.Format(time.RFC3339), ch.EventName, keys)
	switch {
	case ch.EventName == "REMOVE" && ch.Reason != "":
		fmt.Fprintf(e.stdout, " (%s)", ch.Reason)
	case len(ch.NewImage) > 0:
		fmt.Fprintf(e.stdout, " %s", ch.NewImage)
	}
	fmt.Fprintln(e.stdout)
}

// pages prints the page after cursor ("" for the first), or all pages
// from there; the next cursor goes to stderr.
func pages(e *env, all bool, cursor string, fetch func(cursor string) (*api.Page, error)) error {
	for {
		p, err := fetch(cursor)
		if err != nil {
			return err
		}
		if e.json() {
			if err := e.printJSON(p); err != nil {
				return err
			}
		} else {
			printPage(e, p)
		}
		if p.Cursor == "" {
			return nil
		}
		if !all {
			if !e.json() {
				fmt.Fprintf(e.stderr, "more: --cursor %s\n", p.Cursor)
			}
			return nil
		}
		cursor = p.Cursor
	}
}

func newObj(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "obj",
		Short: "Manage buckets and their objects",
		Long:  "Objects are named BUCKET/KEY; keys may hold slashes.",
	}
	cmd.AddCommand(newObjLs(e), newObjMb(e), newObjRb(e), newObjPut(e), newObjGet(e), newObjStat(e), newObjRm(e), newObjPresign(e), newObjUploads(e))
	return cmd
}

func splitObject(s string) (bucket, key string, err error) {
	bucket, key, _ = strings.Cut(s, "/")
	if bucket == "" {
		return "", "", usagef("%q: name an object as BUCKET/KEY", s)
	}
	return bucket, key, nil
}

// objectName splits BUCKET/KEY where the key may not be left out.
func objectName(s string) (bucket, key string, err error) {
	bucket, key, err = splitObject(s)
	if err == nil && key == "" {
		err = usagef("%q names no object: name one as BUCKET/KEY, e.g. %s/report.pdf", s, bucket)
	}
	return bucket, key, err
}

func newObjLs(e *env) *cobra.Command {
	var delim, cursor string
	var limit int
	cmd := &cobra.Command{
		Use: "ls [BUCKET[/PREFIX]]", Short: "List buckets, or the objects of one", Args: cobra.MaximumNArgs(1),
		Example: "  nimbus obj ls\n  nimbus obj ls avatars/img/ --delimiter /",
		RunE: func(cmd *cobra.Command, args []string) error {
			c := e.client()
			if len(args) == 0 {
				bs, err := c.ListBuckets(cmd.Context())
				if err != nil {
					return err
				}
				if e.json() {
					return e.printJSON(bs)
				}
				w := e.table()
				fmt.Fprintln(w, "BUCKET\tSTORED\tCREATED")
				for _, b := range bs {
					fmt.Fprintf(w, "%s\t%s\t%s\n", b.Name, humanBytes64(int64(b.StoredBytes)), ago(b.Created))
				}
				return w.Flush()
			}
			bucket, prefix, err := splitObject(args[0])
			if err != nil {
				return err
			}
			l, err := c.ListObjects(cmd.Context(), bucket, prefix, delim, cursor, limit)
			if err != nil {
				return err
			}
			if e.json() {
				return e.printJSON(l)
			}
			w := e.table()
			fmt.Fprintln(w, "KEY\tSIZE\tMODIFIED\tETAG")
			for _, p := range l.CommonPrefixes {
				fmt.Fprintf(w, "%s\t-\t-\t-\n", p)
			}
			for _, o := range l.Objects {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", o.Key, humanBytes64(o.Size), ago(o.Modified), o.ETag)
			}
			if err := w.Flush(); err != nil {
				return err
			}
			if l.Cursor != "" {
				fmt.Fprintf(e.stderr, "more: --cursor %s\n", l.Cursor)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&delim, "delimiter", "", `group keys by this delimiter (e.g. "/")`)
	cmd.Flags().StringVar(&cursor, "cursor", "", "continue after a previous page")
	cmd.Flags().IntVar(&limit, "limit", 0, "entries per page (default and at most 1000)")
	return cmd
}

func newObjMb(e *env) *cobra.Command {
	return &cobra.Command{
		Use: "mb BUCKET", Short: "Create a bucket", Args: cobra.ExactArgs(1),
		Example: "  nimbus obj mb avatars",
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := e.client().PutBucket(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if e.json() {
				return e.printJSON(res)
			}
			fmt.Fprintf(e.stdout, "%s bucket %s\n", res.Change, args[0])
			return nil
		},
	}
}

func newObjRb(e *env) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use: "rb BUCKET", Short: "Delete a bucket (--force when it holds objects)", Args: cobra.ExactArgs(1),
		Example: "  nimbus obj rb avatars\n  nimbus obj rb avatars --force   # it holds objects",
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := e.client().DeleteBucket(cmd.Context(), args[0], force); err != nil {
				return err
			}
			if !e.json() {
				fmt.Fprintf(e.stdout, "deleted bucket %s\n", args[0])
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "delete the bucket even if it holds objects")
	return cmd
}

func newObjPut(e *env) *cobra.Command {
	var contentType, ifMatch string
	var quiet, ifAbsent bool
	var meta, headers []string
	cmd := &cobra.Command{
		Use: "put BUCKET/KEY FILE", Short: "Upload a file (- for stdin), streamed", Args: cobra.ExactArgs(2),
		Example: "  nimbus obj put avatars/img/ada.png ada.png --content-type image/png\n  tar c src | nimbus obj put backups/src.tar -\n" +
			"  nimbus obj put locks/deploy owner.txt --if-absent   # exit 3 if the key holds an object\n" +
			"  nimbus obj put web/app.js app.js.gz --content-type text/javascript -H 'Content-Encoding: gzip' -H 'Cache-Control: max-age=600'",
		RunE: func(cmd *cobra.Command, args []string) error {
			bucket, key, err := splitObject(args[0])
			if err != nil {
				return err
			}
			md, err := parseEnv(meta)
			if err != nil {
				return err
			}
			hd := map[string]string{}
			for _, h := range headers {
				name, value, ok := strings.Cut(h, ":")
				if !ok || strings.TrimSpace(name) == "" {
					return usagef("--header %q: want NAME: VALUE, e.g. 'Cache-Control: max-age=600'", h)
				}
				name = http.CanonicalHeaderKey(strings.TrimSpace(name))
				if !slices.Contains(api.ObjectHeaders, name) {
					return usagef("--header %s: objects keep only %s", name, strings.Join(api.ObjectHeaders, ", "))
				}
				hd[name] = strings.TrimSpace(value)
			}
			var r io.Reader = e.stdin
			size := int64(-1)
			if args[1] != "-" {
				f, err := os.Open(args[1])
				if err != nil {
					return usagef("%v", err)
				}
				defer f.Close()
				st, err := f.Stat()
				if err != nil {
					return err
				}
				r, size = f, st.Size()
				if key == "" || strings.HasSuffix(key, "/") {
					key += st.Name()
				}
			}
			if !quiet && !e.json() {
				p := newProgress(e.stderr, "upload", size)
				defer p.done()
				r = io.TeeReader(r, p)
			}
			ifNoneMatch := ""
			if ifAbsent {
				ifNoneMatch = "*"
			}
			o, err := e.client().PutObjectWith(cmd.Context(), bucket, key, r, size, &api.PutObjectOptions{
				ContentType: contentType, Metadata: md, Headers: hd, IfNoneMatch: ifNoneMatch, IfMatch: ifMatch})
			if err != nil {
				return err
			}
			if e.json() {
				return e.printJSON(o)
			}
			fmt.Fprintf(e.stdout, "%s/%s %s etag %s\n", bucket, o.Key, humanBytes64(o.Size), o.ETag)
			return nil
		},
	}
	cmd.Flags().StringVar(&contentType, "content-type", "", "the object's content type")
	cmd.Flags().StringArrayVar(&meta, "meta", nil, "user metadata NAME=VALUE (repeatable)")
	cmd.Flags().StringArrayVarP(&headers, "header", "H", nil, "a header the object keeps and is served with, 'NAME: VALUE' (repeatable): "+strings.Join(api.ObjectHeaders, ", "))
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress bar")
	cmd.Flags().BoolVar(&ifAbsent, "if-absent", false, "store only if the key holds no object (If-None-Match: *); exit 3 if it does")
	cmd.Flags().StringVar(&ifMatch, "if-match", "", "store only over the object with this ETag (If-Match); exit 3 if it changed")
	return cmd
}

func newObjGet(e *env) *cobra.Command {
	var rng string
	var quiet bool
	cmd := &cobra.Command{
		Use: "get BUCKET/KEY [FILE]", Short: "Download an object to a file or stdout, streamed", Args: cobra.RangeArgs(1, 2),
		Example: "  nimbus obj get avatars/img/ada.png ada.png\n  nimbus obj get logs/app.log --range -500   # the last 500 bytes, to stdout",
		RunE: func(cmd *cobra.Command, args []string) error {
			bucket, key, err := objectName(args[0])
			if err != nil {
				return err
			}
			if rng != "" && !strings.HasPrefix(rng, "bytes=") {
				rng = "bytes=" + rng
			}
			resp, err := e.client().GetObject(cmd.Context(), bucket, key, rng)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			var w io.Writer = e.stdout
			file := len(args) == 2 && args[1] != "-"
			if file {
				f, err := os.Create(args[1])
				if err != nil {
					return usagef("%v", err)
				}
				defer f.Close()
				w = f
				if !quiet {
					p := newProgress(e.stderr, "download", resp.ContentLength)
					defer p.done()
					w = io.MultiWriter(f, p)
				}
			}
			// A whole object is checked against its SHA-256: the node
			// leaves the end-to-end check to the client, as S3 does.
			var sum hash.Hash
			want := api.ReprDigest(resp.Header)
			if want != nil && resp.StatusCode == http.StatusOK {
				sum = sha256.New()
				w = io.MultiWriter(w, sum)
			}
			err = download(w, resp, sum, want)
			if err != nil && file {
				os.Remove(args[1]) // nothing half-written is left behind
				return fmt.Errorf("%w; %s removed, run the command again", err, args[1])
			}
			return err
		},
	}
	cmd.Flags().StringVar(&rng, "range", "", "a byte range, e.g. 0-1023 or -500")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress bar")
	return cmd
}

// download copies resp's body to w and checks its length, and, with sum,
// that it hashes to want.
func download(w io.Writer, resp *http.Response, sum hash.Hash, want []byte) error {
	n, err := api.CopyBody(w, resp.Body)
	if err != nil {
		return fmt.Errorf("download cut short after %d bytes: %w", n, err)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return fmt.Errorf("download ended after %d of %d bytes", n, resp.ContentLength)
	}
	if sum != nil && !bytes.Equal(sum.Sum(nil), want) {
		return fmt.Errorf("the %d bytes downloaded do not match the object's SHA-256 (damaged on the way)", n)
	}
	return nil
}

func newObjStat(e *env) *cobra.Command {
	return &cobra.Command{
		Use: "stat BUCKET/KEY", Short: "Describe an object without downloading it", Args: cobra.ExactArgs(1),
		Example: "  nimbus obj stat web/app.js\n  nimbus obj stat web/app.js -o json",
		RunE: func(cmd *cobra.Command, args []string) error {
			bucket, key, err := objectName(args[0])
			if err != nil {
				return err
			}
			o, err := e.client().HeadObject(cmd.Context(), bucket, key)
			if err != nil {
				return err
			}
			if e.json() {
				return e.printJSON(o)
			}
			w := e.stdout
			fmt.Fprintf(w, "%s/%s\n", bucket, o.Key)
			fmt.Fprintf(w, "  size          %s (%d bytes)\n", humanBytes64(o.Size), o.Size)
			fmt.Fprintf(w, "  etag          %s\n", o.ETag)
			fmt.Fprintf(w, "  content type  %s\n", o.ContentType)
			fmt.Fprintf(w, "  modified      %s\n", o.Modified.UTC().Format(time.RFC3339))
			for _, k := range slices.Sorted(maps.Keys(o.Headers)) {
				fmt.Fprintf(w, "  header        %s: %s\n", k, o.Headers[k])
			}
			for _, k := range slices.Sorted(maps.Keys(o.Metadata)) {
				fmt.Fprintf(w, "  meta          %s=%s\n", k, o.Metadata[k])
			}
			return nil
		},
	}
}

func newObjRm(e *env) *cobra.Command {
	var ifMatch string
	cmd := &cobra.Command{
		Use: "rm BUCKET/KEY", Short: "Delete an object", Args: cobra.ExactArgs(1),
		Example: "  nimbus obj rm avatars/img/ada.png\n" +
			"  nimbus obj rm reports/q3.pdf --if-match 9b2cf535f27731c974343645a3985328   # exit 3 if it changed",
		RunE: func(cmd *cobra.Command, args []string) error {
			bucket, key, err := objectName(args[0])
			if err != nil {
				return err
			}
			if ifMatch != "" {
				return e.client().DeleteObjectIf(cmd.Context(), bucket, key, ifMatch)
			}
			return e.client().DeleteObject(cmd.Context(), bucket, key)
		},
	}
	cmd.Flags().StringVar(&ifMatch, "if-match", "", "delete only the object with this ETag (If-Match; * for any object); exit 3 if it changed")
	return cmd
}

func newObjPresign(e *env) *cobra.Command {
	var put bool
	var expires time.Duration
	var downloadAs string
	cmd := &cobra.Command{
		Use: "presign BUCKET/KEY", Short: "Print a URL that lets anyone GET (or --put) one object until it expires", Args: cobra.ExactArgs(1),
		Example: `  curl -o a.png "$(nimbus obj presign avatars/img/a.png --expires 15m)"
  curl -T a.png "$(nimbus obj presign avatars/img/a.png --put)"
  nimbus obj presign invoices/2026/0042.pdf --download-as "Invoice 42.pdf"   # browsers save it so`,
		RunE: func(cmd *cobra.Command, args []string) error {
			bucket, key, err := objectName(args[0])
			if err != nil {
				return err
			}
			method := "GET"
			if put {
				method = "PUT"
			}
			res, err := e.client().Presign(cmd.Context(), bucket, &api.PresignRequest{Key: key, Method: method, Expires: expires.String(), Download: downloadAs})
			if err != nil {
				return err
			}
			res.URL = strings.TrimRight(e.server, "/") + res.Path
			if e.json() {
				return e.printJSON(res)
			}
			fmt.Fprintln(e.stdout, res.URL)
			return nil
		},
	}
	cmd.Flags().BoolVar(&put, "put", false, "a URL for uploading (PUT) instead of downloading")
	cmd.Flags().StringVar(&downloadAs, "download-as", "", "a file name browsers save the download under (Content-Disposition: attachment)")
	cmd.Flags().DurationVar(&expires, "expires", time.Hour, "how long the URL works (at most 168h)")
	return cmd
}

func humanBytes64(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// progress draws a one-line progress bar on w, at most five times a
// second, for transfers of at least a megabyte.
type progress struct {
	mu      sync.Mutex
	w       io.Writer
	verb    string
	total   int64
	n       int64
	start   time.Time
	last    time.Time
	enabled bool
}

func newProgress(w io.Writer, verb string, total int64) *progress {
	return &progress{w: w, verb: verb, total: total, start: time.Now(), enabled: total < 0 || total >= 1<<20}
}

func (p *progress) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n += int64(len(b))
	if p.enabled && time.Since(p.last) >= 200*time.Millisecond {
		p.last = time.Now()
		p.draw()
	}
	return len(b), nil
}

func (p *progress) draw() {
	rate := float64(p.n) / max(time.Since(p.start).Seconds(), 1e-3)
	if p.total > 0 {
		const width = 30
		fill := int(float64(width) * float64(p.n) / float64(p.total))
		fill = min(fill, width)
		fmt.Fprintf(p.w, "\r%s [%s%s] %3d%% %s / %s %s/s ", p.verb, strings.Repeat("=", fill), strings.Repeat(" ", width-fill),
			p.n*100/p.total, humanBytes64(p.n), humanBytes64(p.total), humanBytes64(int64(rate)))
		return
	}
	fmt.Fprintf(p.w, "\r%s %s %s/s ", p.verb, humanBytes64(p.n), humanBytes64(int64(rate)))
}

func (p *progress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.enabled && p.n > 0 {
		p.draw()
		fmt.Fprintln(p.w)
	}
}

func newObjUploads(e *env) *cobra.Command {
	var abort []string
	var olderThan time.Duration
	cmd := &cobra.Command{
		Use: "uploads BUCKET", Short: "List the multipart uploads in progress into a bucket, or abort some", Args: cobra.ExactArgs(1),
		Long: "Multipart uploads (the S3 API's, the node API's, the SDK's Bucket.Upload) hold their parts\n" +
			"until completed or aborted, or for 7 days. List them, and abort those left behind.",
		Example: "  nimbus obj uploads media\n" +
			"  nimbus obj uploads media --abort 9b0d0b1a383a51a83fa8a7786c4f5e46\n" +
			"  nimbus obj uploads media --abort-older-than 24h   # the uploads started a day ago or more",
		RunE: func(cmd *cobra.Command, args []string) error {
			c, bucket := e.client(), args[0]
			if olderThan < 0 {
				return usagef("--abort-older-than %v: give a positive duration", olderThan)
			}
			if len(abort) == 0 && olderThan == 0 {
				us, err := c.ListUploads(cmd.Context(), bucket)
				if err != nil {
					return err
				}
				if e.json() {
					return e.printJSON(us)
				}
				w := e.table()
				fmt.Fprintln(w, "ID\tKEY\tSTARTED")
				for _, u := range us {
					fmt.Fprintf(w, "%s\t%s\t%s\n", u.ID, u.Key, ago(u.Created))
				}
				return w.Flush()
			}
			ids := abort
			if olderThan > 0 {
				us, err := c.ListUploads(cmd.Context(), bucket)
				if err != nil {
					return err
				}
				for _, u := range us {
					if time.Since(u.Created) >= olderThan {
						ids = append(ids, u.ID)
					}
				}
			}
			aborted := []string{}
			for _, id := range ids {
				if err := c.AbortUpload(cmd.Context(), bucket, id); err != nil {
					return fmt.Errorf("abort %s: %w (%d aborted before it; list them with `nimbus obj uploads %s`)", id, err, len(aborted), bucket)
				}
				aborted = append(aborted, id)
			}
			if e.json() {
				return e.printJSON(map[string][]string{"aborted": aborted})
			}
			fmt.Fprintf(e.stdout, "aborted %d uploads\n", len(aborted))
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&abort, "abort", nil, "abort the upload with this ID and remove its parts (repeatable)")
	cmd.Flags().DurationVar(&olderThan, "abort-older-than", 0, "abort every upload started at least this long ago")
	return cmd
}
