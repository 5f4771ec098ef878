package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/events/cloudevent"
	"github.com/nimbus-run/nimbus/internal/manifest"
)

// eventCommands are the commands of the events issue: dead-letter queues,
// triggers, schedules, rules, publishing events and tracking async
// invocations.
func eventCommands(e *env) []*cobra.Command {
	return []*cobra.Command{newDLQ(e), newTriggers(e), newSchedules(e), newRules(e), newEvents(e), newInvocation(e)}
}

// asyncFlags are invoke's --async flags.
type asyncFlags struct {
	async    bool
	callback string
	wait     bool
	timeout  time.Duration
}

func (a *asyncFlags) flags(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.BoolVar(&a.async, "async", false, "invoke asynchronously: print the invocation id once the event is stored")
	fl.StringVar(&a.callback, "callback", "", "with --async: URL the result is POSTed to when done (X-Callback-Url)")
	fl.BoolVar(&a.wait, "wait", false, "with --async: wait for the outcome and print it")
	fl.DurationVar(&a.timeout, "wait-timeout", 5*time.Minute, "with --wait: how long to wait")
}

func invokeAsync(cmd *cobra.Command, e *env, name, qualifier string, payload []byte, a asyncFlags) error {
	if qualifier != "" {
		name += ":" + qualifier
	}
	c := e.client()
	id, err := c.InvokeAsync(cmd.Context(), name, payload, a.callback)
	if err != nil {
		return err
	}
	if !a.wait {
		if e.json() {
			return e.printJSON(api.Accepted{InvocationID: id})
		}
		fmt.Fprintln(e.stdout, id)
		return nil
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), a.timeout)
	defer cancel()
	for {
		inv, err := c.Invocation(ctx, id)
		if err == nil && inv.Status != api.AsyncQueued {
			return printInvocation(e, inv)
		}
		if !pause(ctx, 200*time.Millisecond) {
			return fmt.Errorf("invocation %s is still queued after %s: %w", id, a.timeout, ctx.Err())
		}
	}
}

func printInvocation(e *env, inv *api.Invocation) error {
	if e.json() {
		return e.printJSON(inv)
	}
	tw := e.table()
	row := func(k string, v any) { fmt.Fprintf(tw, "%s:\t%v\n", k, v) }
	row("Invocation", inv.ID)
	row("Function", inv.Function)
	row("Status", inv.Status)
	row("Attempts", inv.Attempts)
	row("Enqueued", inv.Enqueued.Local().Format(time.RFC3339Nano))
	if !inv.Finished.IsZero() {
		row("Finished", inv.Finished.Local().Format(time.RFC3339Nano))
	}
	if inv.Error != "" {
		row("Error", inv.ErrorType+": "+inv.Error)
	}
	if len(inv.Result) > 0 {
		row("Result", string(inv.Result))
	}
	if inv.ResultTruncated {
		row("Result", "(over 256 KiB: not kept)")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if inv.Status == api.AsyncFailed {
		return fmt.Errorf("invocation %s failed", inv.ID)
	}
	return nil
}

func newInvocation(e *env) *cobra.Command {
	return &cobra.Command{
		Use:     "invocation ID",
		Short:   "Show the status, result or error of an asynchronous invocation",
		Example: "  nimbus invocation 3f1c...\n  nimbus invocation 3f1c... -o json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			inv, err := e.client().Invocation(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printInvocation(e, inv)
		},
	}
}

func newDLQ(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "Inspect, replay and purge a function's dead-letter queue",
		Long: `Events that failed for good (async invocations after their retries, or
past their maximum age; stream records after theirs) land in their
function's dead-letter queue with their error and attempt count.`,
	}
	var limit int
	ls := &cobra.Command{
		Use: "ls FUNCTION", Short: "List dead letters, oldest first", Args: cobra.ExactArgs(1),
		Example: "  nimbus dlq ls orders",
		RunE: func(cmd *cobra.Command, args []string) error {
			list, err := e.client().DeadLetters(cmd.Context(), args[0], limit)
			if err != nil {
				return err
			}
			if e.json() {
				return e.printJSON(list)
			}
			if len(list.Entries) == 0 {
				fmt.Fprintf(e.stdout, "The dead-letter queue of %s is empty.\n", args[0])
				return nil
			}
			tw := e.table()
			fmt.Fprintln(tw, "SEQ\tID\tFAILED\tATTEMPTS\tREASON\tERROR")
			for _, d := range list.Entries {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\n", d.Seq, d.ID, ago(d.Failed), d.Attempts, d.Reason, oneLine(d.Error, 80))
			}
			if uint64(len(list.Entries)) < list.Total {
				fmt.Fprintf(tw, "... %d more\n", list.Total-uint64(len(list.Entries)))
			}
			return tw.Flush()
		},
	}
	ls.Flags().IntVarP(&limit, "limit", "n", 100, "how many to list (at most 1000)")
	show := &cobra.Command{
		Use: "show FUNCTION ID|SEQ", Short: "Show one dead letter with its event", Args: cobra.ExactArgs(2),
		Example: "  nimbus dlq show orders 12",
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := e.client().DeadLetter(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			return e.printJSON(d)
		},
	}
	var all bool
	replay := &cobra.Command{
		Use: "replay FUNCTION [ID|SEQ...] [--all]", Short: "Queue dead letters again (as new async invocations) and remove them",
		Args:    cobra.MinimumNArgs(1),
		Example: "  nimbus dlq replay orders 3f1c...\n  nimbus dlq replay orders --all",
		RunE: func(cmd *cobra.Command, args []string) error {
			if !all && len(args) == 1 {
				return usagef("name the dead letters to replay, or give --all")
			}
			res, err := e.client().Replay(cmd.Context(), args[0], api.ReplayRequest{IDs: args[1:], All: all})
			if err != nil {
				return err
			}
			if e.json() {
				return e.printJSON(res)
			}
			for _, r := range res.Replayed {
				fmt.Fprintf(e.stdout, "replayed %s as %s\n", r.ID, r.InvocationID)
			}
			if len(res.Replayed) == 0 {
				fmt.Fprintln(e.stdout, "nothing to replay")
			}
			return nil
		},
	}
	replay.Flags().BoolVar(&all, "all", false, "replay every dead letter of the function")
	purge := &cobra.Command{
		Use: "purge FUNCTION", Short: "Delete every dead letter of a function", Args: cobra.ExactArgs(1),
		Example: "  nimbus dlq purge orders",
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := e.client().PurgeDeadLetters(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if e.json() {
				return e.printJSON(res)
			}
			fmt.Fprintf(e.stdout, "purged %d dead letters of %s\n", res.Purged, args[0])
			return nil
		},
	}
	cmd.AddCommand(ls, show, replay, purge)
	return cmd
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "..."
	}
	return s
}

func newTriggers(e *env) *cobra.Command {
	return &cobra.Command{
		Use:     "triggers [FUNCTION]",
		Short:   "List triggers (schedules, streams, subjects, webhooks) with their state",
		Example: "  nimbus triggers\n  nimbus triggers orders -o json",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ts, err := e.client().Triggers(cmd.Context())
			if err != nil {
				return err
			}
			if len(args) == 1 {
				var mine []api.TriggerStatus
				for _, t := range ts {
					if t.Function == args[0] {
						mine = append(mine, t)
					}
				}
				ts = mine
			}
			if e.json() {
				return e.printJSON(ts)
			}
			if len(ts) == 0 {
				fmt.Fprintln(e.stdout, "No triggers. Declare them under a function's `triggers:` in nimbus.yaml and deploy -f.")
				return nil
			}
			tw := e.table()
			fmt.Fprintln(tw, "FUNCTION\tNAME\tKIND\tSOURCE\tSTATE\tDETAIL")
			for _, t := range ts {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.Function, t.Name, t.Kind, triggerSource(t.Trigger), t.State, triggerDetail(t))
			}
			return tw.Flush()
		},
	}
}

func triggerSource(t api.Trigger) string {
	switch {
	case t.Schedule != "":
		return t.Schedule
	case t.Stream != "":
		return "stream " + t.Stream
	case t.Subject != "":
		return "subject " + t.Subject
	case t.Webhook != "":
		return "POST /webhook/" + t.Webhook + " (" + t.Style + ")"
	}
	return "-"
}

func triggerDetail(t api.TriggerStatus) string {
	switch t.Kind {
	case api.KindSchedule:
		s := "next " + fireTime(t.NextFire)
		if t.Missed > 0 {
			s += fmt.Sprintf(", %d missed", t.Missed)
		}
		return s
	case api.KindStream, api.KindSubject:
		return fmt.Sprintf("%d pending in %s", t.Pending, t.StreamName)
	case api.KindWebhook:
		return fmt.Sprintf("%d accepted, %d rejected", t.Accepted, t.Rejected)
	}
	return ""
}

func fireTime(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := time.Until(t).Round(time.Second)
	return fmt.Sprintf("%s (in %s)", t.Local().Format("2006-01-02 15:04:05"), d)
}

func newSchedules(e *env) *cobra.Command {
	return &cobra.Command{
		Use:     "schedules",
		Short:   "List schedules with their next fire times",
		Example: "  nimbus schedules\n  nimbus schedules -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ss, err := e.client().Schedules(cmd.Context())
			if err != nil {
				return err
			}
			if e.json() {
				return e.printJSON(ss)
			}
			if len(ss) == 0 {
				fmt.Fprintln(e.stdout, "No schedules.")
				return nil
			}
			tw := e.table()
			fmt.Fprintln(tw, "FUNCTION\tNAME\tSCHEDULE\tNEXT FIRE\tLAST FIRED\tMISSED\tSTATE")
			for _, s := range ss {
				last := "-"
				if !s.LastFired.IsZero() {
					last = s.LastFired.Local().Format("2006-01-02 15:04:05")
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", s.Function, s.Name, s.Trigger.Schedule, fireTime(s.NextFire), last, s.Missed, s.State)
			}
			return tw.Flush()
		},
	}
}

func newRules(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "rules",
		Short:   "List event rules (or remove one with `rules rm NAME`)",
		Example: "  nimbus rules\n  nimbus rules rm order-placed",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			rs, err := e.client().Rules(cmd.Context())
			if err != nil {
				return err
			}
			if e.json() {
				return e.printJSON(rs)
			}
			if len(rs) == 0 {
				fmt.Fprintln(e.stdout, "No rules. Declare them under `rules:` in nimbus.yaml and deploy -f.")
				return nil
			}
			tw := e.table()
			fmt.Fprintln(tw, "NAME\tSTATE\tTARGETS\tPATTERN")
			for _, r := range rs {
				var ts []string
				for _, t := range r.Targets {
					switch {
					case t.Function != "":
						ts = append(ts, "function "+t.Function)
					case t.Subject != "":
						ts = append(ts, "subject "+t.Subject)
					}
				}
				state := "enabled"
				if r.Disabled {
					state = "disabled"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Name, state, strings.Join(ts, ", "), oneLine(string(r.Pattern), 60))
			}
			return tw.Flush()
		},
	}
	cmd.AddCommand(&cobra.Command{
		Use: "rm NAME...", Short: "Remove rules", Args: cobra.MinimumNArgs(1),
		Example: "  nimbus rules rm order-placed audit-all",
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, n := range args {
				if err := e.client().DeleteRule(cmd.Context(), n); err != nil {
					return fmt.Errorf("%s: %w", n, err)
				}
				fmt.Fprintf(e.stdout, "deleted rule %s\n", n)
			}
			return nil
		},
	})
	return cmd
}

func newEvents(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "events", Short: "Publish CloudEvents to the event bus or a subject"}
	var typ, source, subjectAttr, contentType string
	pub := &cobra.Command{
		Use:   "publish [SUBJECT] DATA",
		Short: "Publish an event (a CloudEvent is built around DATA)",
		Long: `Publish wraps DATA (JSON text, @FILE or - for stdin) in a CloudEvent and
stores it on SUBJECT, or on the event bus (events.<type>) where rules see it
when no SUBJECT is given. A SUBJECT must be captured by a stream: one that a
subject or stream trigger reads, or the bus (events.*). DATA that already is
a CloudEvent (it has "specversion") is published as it is.`,
		Example: `  nimbus events publish orders.new '{"id": 7, "total": 120}'
  nimbus events publish --type com.example.order.created '{"total": 120}'`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			subject, data := "", args[0]
			if len(args) == 2 {
				subject, data = args[0], args[1]
			}
			payload, err := readData(e, data)
			if err != nil {
				return err
			}
			body := payload
			var probe map[string]any
			if json.Unmarshal(payload, &probe) != nil || probe["specversion"] == nil {
				ct := contentType
				if ct == "" {
					ct = "text/plain"
					if json.Valid(payload) {
						ct = "application/json"
					}
				}
				ev, err := cloudevent.New(source, typ, subjectAttr, payload, ct)
				if err != nil {
					return usageError{err}
				}
				if body, err = cloudevent.ToJSON(ev); err != nil {
					return usageError{err}
				}
			}
			res, err := e.client().PublishEvent(cmd.Context(), subject, body)
			if err != nil {
				return err
			}
			if e.json() {
				return e.printJSON(res)
			}
			fmt.Fprintf(e.stdout, "published %s to %s (stream %s, seq %d)\n", res.ID, res.Subject, res.Stream, res.Seq)
			return nil
		},
	}
	fl := pub.Flags()
	fl.StringVar(&typ, "type", "run.nimbus.cli.event", "the event's type attribute")
	fl.StringVar(&source, "source", "/nimbus/cli", "the event's source attribute")
	fl.StringVar(&subjectAttr, "ce-subject", "", "the event's subject attribute")
	fl.StringVar(&contentType, "content-type", "", "DATA's media type (default: application/json when it is JSON, else text/plain)")
	cmd.AddCommand(pub)
	return cmd
}

// deployEvents applies the triggers of every function of m (an empty list
// removes a function's triggers) and the rules, reporting what changed.
func deployEvents(ctx context.Context, e *env, m *manifest.Manifest) error {
	c := e.client()
	for _, name := range m.Names() {
		ts := m.Functions[name].Triggers
		res, err := c.PutTriggers(ctx, name, ts)
		if err != nil {
			return fmt.Errorf("%s: triggers: %w", name, err)
		}
		if !e.json() && (len(ts) > 0 || res.Change != "unchanged") {
			fmt.Fprintf(e.stdout, "%-9s triggers of %s (%d)\n", res.Change, name, len(ts))
		}
	}
	for _, name := range sortedKeys(m.Rules) {
		res, err := c.PutRule(ctx, name, m.Rules[name])
		if err != nil {
			return fmt.Errorf("rules.%s: %w", name, err)
		}
		if !e.json() {
			fmt.Fprintf(e.stdout, "%-9s rule %s\n", res.Change, name)
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
