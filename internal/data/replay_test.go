package data_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/data"
	"github.com/nimbus-run/nimbus/internal/node/nodetest"
)

// TestTableChangesAPI replays a table's change stream through the HTTP
// API: every change from the oldest, in pages that follow next, from a
// revision, from a time, nothing from a time to come; bad positions and
// limits are 400s naming the parameter; a long poll (wait) answers when
// the next change is made, or empty after its wait, or at once when the
// node stops.
func TestTableChangesAPI(t *testing.T) {
	n, c := startNode(t)
	ctx := context.Background()
	if _, err := c.PutTable(ctx, &api.Table{Name: "orders", Key: "id"}); err != nil {
		t.Fatal(err)
	}
	put := func(item string) {
		t.Helper()
		if _, err := c.PutItem(ctx, "orders", &api.PutItemRequest{Item: json.RawMessage(item)}); err != nil {
			t.Fatal(err)
		}
	}
	put(`{"id":"a","v":1}`)
	put(`{"id":"b","v":1}`)
	time.Sleep(20 * time.Millisecond)
	middle := time.Now()
	time.Sleep(20 * time.Millisecond)
	put(`{"id":"a","v":2}`)
	if err := c.DeleteItem(ctx, "orders", json.RawMessage(`{"id":"b"}`), 0); err != nil {
		t.Fatal(err)
	}

	all, err := c.TableChanges(ctx, "orders", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ch := range all.Changes {
		got = append(got, fmt.Sprintf("%s %s %s>%s", ch.EventName, ch.Keys["id"], ch.OldImage, ch.NewImage))
	}
	want := []string{`INSERT "a" >{"id":"a","v":1}`, `INSERT "b" >{"id":"b","v":1}`, `MODIFY "a" {"id":"a","v":1}>{"id":"a","v":2}`, `REMOVE "b" {"id":"b","v":1}>`}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("changes from the oldest:\n got %q\nwant %q", got, want)
	}
	last := all.Changes[3].Revision
	if all.Next != last+1 {
		t.Fatalf("next = %d, want %d", all.Next, last+1)
	}

	// Pages of two, following next.
	var revs []uint64
	for from := "oldest"; ; {
		p, err := c.TableChanges(ctx, "orders", from, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Changes) == 0 {
			if p.Next != 0 {
				t.Fatalf("an empty page says next %d, want 0", p.Next)
			}
			break
		}
		for _, ch := range p.Changes {
			revs = append(revs, ch.Revision)
		}
		from = strconv.FormatUint(p.Next, 10)
	}
	if len(revs) != 4 || revs[3] != last {
		t.Fatalf("paged revisions %v, want the 4 changes", revs)
	}
	if p, err := c.TableChanges(ctx, "orders", strconv.FormatUint(all.Changes[2].Revision, 10), 0); err != nil || len(p.Changes) != 2 || p.Changes[0].EventName != "MODIFY" {
		t.Fatalf("from the MODIFY's revision: %+v, %v", p, err)
	}
	if p, err := c.TableChanges(ctx, "orders", middle.Format(time.RFC3339Nano), 0); err != nil || len(p.Changes) != 2 || p.Changes[0].EventName != "MODIFY" {
		t.Fatalf("from a time between the writes: %+v, %v", p, err)
	}
	if p, err := c.TableChanges(ctx, "orders", time.Now().Add(time.Hour).Format(time.RFC3339), 0); err != nil || len(p.Changes) != 0 || p.Next != 0 {
		t.Fatalf("from a time to come: %+v, %v", p, err)
	}

	for _, tc := range []struct {
		from  string
		limit int
		field string
	}{{"new", 0, "from"}, {"yesterday", 0, "from"}, {"0", 0, "from"}, {"-3", 0, "from"}, {"oldest", 1001, "limit"}} {
		_, err := c.TableChanges(ctx, "orders", tc.from, tc.limit)
		var ae *api.Error
		if !isCode(err, api.CodeInvalid) || !asAPIError(err, &ae) || ae.Field != tc.field {
			t.Errorf("from %q, limit %d: %v, want 400 naming %s", tc.from, tc.limit, err, tc.field)
		}
	}
	if _, err := c.TableChanges(ctx, "nosuch", "", 0); !isCode(err, api.CodeNotFound) {
		t.Fatalf("changes of no table: %v", err)
	}

	// A long poll: a page that would be empty waits for the next change,
	// and answers as soon as it is made; with none, after the wait.
	next := strconv.FormatUint(all.Next, 10)
	start := time.Now()
	if p, err := c.TableChangesWait(ctx, "orders", next, 0, 300*time.Millisecond); err != nil || len(p.Changes) != 0 {
		t.Fatalf("a wait with no change: %+v, %v", p, err)
	} else if waited := time.Since(start); waited < 250*time.Millisecond {
		t.Fatalf("a wait of 300ms with no change answered after %v", waited)
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		put(`{"id":"c","v":1}`)
	}()
	start = time.Now()
	p, err := c.TableChangesWait(ctx, "orders", next, 0, 20*time.Second)
	if err != nil || len(p.Changes) != 1 || p.Changes[0].EventName != "INSERT" || string(p.Changes[0].Keys["id"]) != `"c"` {
		t.Fatalf("a wait for the next change: %+v, %v", p, err)
	}
	if waited := time.Since(start); waited < 250*time.Millisecond || waited > 5*time.Second {
		t.Fatalf("the change made after 300ms came after %v", waited)
	}
	// With changes there, a wait answers them at once, all in one page
	// made by one consumer (the server announces each it creates).
	created, err := n.Store.JS.Conn().SubscribeSync("$JS.EVENT.ADVISORY.CONSUMER.CREATED.>")
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if p, err := c.TableChangesWait(ctx, "orders", "oldest", 0, 20*time.Second); err != nil || len(p.Changes) != 5 {
		t.Fatalf("a wait with five changes there: %+v, %v", p, err)
	} else if waited := time.Since(start); waited > 5*time.Second {
		t.Fatalf("a wait with five changes there answered after %v", waited)
	}
	consumers := 0
	for {
		if _, err := created.NextMsg(500 * time.Millisecond); err != nil {
			break
		}
		consumers++
	}
	created.Unsubscribe()
	if consumers != 1 {
		t.Fatalf("a page of changes read through %d consumers, want 1", consumers)
	}
	for _, wait := range []string{"forever", "-1s", "2m"} {
		req, _ := http.NewRequest(http.MethodGet, n.URL()+"/api/v1/tables/orders/changes?wait="+wait, nil)
		req.Header.Set("Authorization", "Bearer "+c.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), `"field": "wait"`) {
			t.Errorf("wait=%s: %d %s, want 400 naming wait", wait, resp.StatusCode, b)
		}
	}

	// A node that stops answers its long polls at once, rather than
	// holding its shutdown for their wait (30 s here).
	polled := make(chan error, 1)
	go func() {
		_, err := c.TableChangesWait(ctx, "orders", strconv.FormatUint(p.Changes[0].Revision+1, 10), 0, 30*time.Second)
		polled <- err
	}()
	time.Sleep(300 * time.Millisecond) // the poll is waiting
	start = time.Now()
	if err := n.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("the node took %v to stop with a long poll waiting", took)
	}
	select {
	case <-polled:
	case <-time.After(5 * time.Second):
		t.Fatal("the long poll still waits after the node stopped")
	}
}

// TestTriggerStarts starts table triggers at each kind of start: new (the
// default) sees only what comes after, oldest everything kept, a revision
// and a time from there; a trigger started again with another start keeps
// its position.
func TestTriggerStarts(t *testing.T) {
	n, c := startNode(t)
	ctx := context.Background()
	if _, err := c.PutTable(ctx, &api.Table{Name: "orders", Key: "id"}); err != nil {
		t.Fatal(err)
	}
	var revs []uint64
	put := func(id string) {
		t.Helper()
		rev, err := c.PutItem(ctx, "orders", &api.PutItemRequest{Item: json.RawMessage(`{"id":"` + id + `"}`)})
		if err != nil {
			t.Fatal(err)
		}
		revs = append(revs, rev)
	}
	put("1")
	put("2")
	time.Sleep(20 * time.Millisecond)
	middle := time.Now()
	time.Sleep(20 * time.Millisecond)
	put("3")
	put("4")

	starts := []struct {
		name  string
		start data.Start
		want  []string
	}{
		{"new", data.Start{}, []string{"5"}},
		{"oldest", data.Start{Oldest: true}, []string{"1", "2", "3", "4", "5"}},
		{"revision", data.Start{Revision: revs[1]}, []string{"2", "3", "4", "5"}},
		{"time", data.Start{Time: middle}, []string{"3", "4", "5"}},
	}
	recs := make([]*recorder, len(starts))
	for i, s := range starts {
		recs[i] = &recorder{}
		tr, err := n.Data.StartTrigger(ctx, data.TriggerSpec{Function: "f", Name: s.name, Table: "orders", Start: s.start}, recs[i], nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(tr.Stop)
	}
	put("5")
	for i, s := range starts {
		nodetest.Eventually(t, 10*time.Second, s.name+"'s changes", func() bool { return recs[i].count() >= len(s.want) })
		time.Sleep(100 * time.Millisecond) // nothing more comes
		recs[i].mu.Lock()
		var ids []string
		for _, r := range recs[i].recs {
			var id string
			json.Unmarshal(r.Keys["id"], &id)
			ids = append(ids, id)
		}
		recs[i].mu.Unlock()
		if fmt.Sprint(ids) != fmt.Sprint(s.want) {
			t.Errorf("start %s: the trigger saw %v, want %v", s.name, ids, s.want)
		}
	}

	// Started again (a redeploy, another node) with another start, the
	// "new" trigger keeps its position: it does not replay from the oldest.
	again := &recorder{}
	tr, err := n.Data.StartTrigger(ctx, data.TriggerSpec{Function: "f", Name: "new", Table: "orders", Start: data.Start{Oldest: true}}, again, nil)
	if err != nil {
		t.Fatalf("starting a trigger again with another start: %v", err)
	}
	t.Cleanup(tr.Stop)
	put("6")
	nodetest.Eventually(t, 10*time.Second, "the change after", func() bool { return recs[0].count()+again.count() >= 2 })
	time.Sleep(100 * time.Millisecond)
	if n := recs[0].count() + again.count(); n != 2 {
		t.Fatalf("the trigger started again saw %d changes in all, want 2 (5 and 6)", n)
	}
}

func asAPIError(err error, ae **api.Error) bool { return errors.As(err, ae) }
