package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/manifest"
)

// The wf commands manage workflows through the Step Functions API the node
// serves, the same one AWS SDKs use.

const (
	sfnMachinePrefix = "arn:aws:states:us-east-1:000000000000:stateMachine:"
	sfnExecPrefix    = "arn:aws:states:us-east-1:000000000000:execution:"
	defaultRole      = "arn:aws:iam::000000000000:role/nimbus"
)

// machineRef accepts a state machine name or ARN.
func machineRef(s string) string {
	if strings.HasPrefix(s, "arn:") {
		return s
	}
	return sfnMachinePrefix + s
}

// execRef accepts an execution ARN or MACHINE:EXECUTION.
func execRef(s string) (string, error) {
	if strings.HasPrefix(s, "arn:") {
		return s, nil
	}
	m, x, ok := strings.Cut(s, ":")
	if !ok || m == "" || x == "" {
		return "", usagef("name an execution by its ARN or as MACHINE:EXECUTION, not %q", s)
	}
	return sfnExecPrefix + m + ":" + x, nil
}

func newWorkflows(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "wf",
		Aliases: []string{"workflow", "workflows"},
		Short:   "Manage workflows (Amazon States Language state machines) and their executions",
		Long: `Workflows are Step Functions state machines run by Nimbus: Task states call
Nimbus functions (by name or Lambda ARN, or arn:aws:states:::lambda:invoke).
Standard workflows are durable (every step is stored; they resume after a
restart); Express workflows run in memory. These commands use the node's Step
Functions API, which AWS SDKs can call too (endpoint: the node's URL).`,
		Example: `  nimbus wf create signup -f signup.asl.json
  nimbus wf run signup -d '{"email":"ada@example.com"}' --wait
  nimbus wf ls signup
  nimbus wf history signup:3f1c...`,
	}
	cmd.AddCommand(newWfCreate(e), newWfRun(e), newWfList(e), newWfDescribe(e), newWfHistory(e), newWfStop(e), newWfRemove(e))
	return cmd
}

func newWfCreate(e *env) *cobra.Command {
	var file, typ, role string
	cmd := &cobra.Command{
		Use:   "create NAME -f DEFINITION.json",
		Short: "Create a state machine, or update its definition",
		Example: `  nimbus wf create signup -f signup.asl.json
  nimbus wf create ingest -f ingest.json --type express`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if file == "" {
				return usagef("-f DEFINITION.json is required")
			}
			def, err := os.ReadFile(file)
			if err != nil {
				return usagef("read definition: %v", err)
			}
			typ = strings.ToUpper(typ)
			if typ != "STANDARD" && typ != "EXPRESS" {
				return usagef("--type must be standard or express")
			}
			change, arn, err := applyWorkflow(cmd.Context(), e.client(), args[0], string(def), typ, role)
			if err != nil {
				return err
			}
			if e.json() {
				return e.printJSON(map[string]string{"stateMachineArn": arn, "change": change})
			}
			fmt.Fprintf(e.stdout, "%-9s %s (%s)\n", change, args[0], arn)
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "the ASL definition (JSON)")
	cmd.Flags().StringVar(&typ, "type", "standard", "standard (durable) or express (in memory)")
	cmd.Flags().StringVar(&role, "role", "", "role ARN recorded with the state machine")
	return cmd
}

// applyWorkflow creates a state machine or brings an existing one to def
// (apply semantics, as deploy -f has). It reports created, updated or
// unchanged.
func applyWorkflow(ctx context.Context, c *api.Client, name, def, typ, role string) (string, string, error) {
	if role == "" {
		role = defaultRole
	}
	old, err := c.DescribeStateMachine(ctx, machineRef(name))
	var ae *api.Error
	switch {
	case errors.As(err, &ae) && ae.Code == "StateMachineDoesNotExist":
		arn, err := c.CreateStateMachine(ctx, name, def, typ, role)
		if err != nil {
			return "", "", fmt.Errorf("%s: %w", name, err)
		}
		return "created", arn, nil
	case err != nil:
		return "", "", fmt.Errorf("%s: %w", name, err)
	}
	if old.Type != typ {
		return "", "", usagef("%s: is a %s state machine; the type cannot change (delete it first: nimbus wf rm %s)", name, old.Type, name)
	}
	if old.Definition == def && (old.RoleArn == role) {
		return "unchanged", old.ARN, nil
	}
	if err := c.UpdateStateMachine(ctx, old.ARN, def, role); err != nil {
		return "", "", fmt.Errorf("%s: %w", name, err)
	}
	return "updated", old.ARN, nil
}

// deployWorkflows applies the workflows of a manifest (after its functions,
// which their tasks call).
func deployWorkflows(ctx context.Context, e *env, m *manifest.Manifest) error {
	if len(m.Workflows) == 0 {
		return nil
	}
	defs := map[string]string{}
	for _, name := range m.WorkflowNames() {
		b, err := os.ReadFile(m.DefinitionPath(name))
		if err != nil {
			return usagef("workflows.%s.definition: %v", name, err)
		}
		defs[name] = string(b)
	}
	c := e.client()
	for _, name := range m.WorkflowNames() {
		w := m.Workflows[name]
		change, _, err := applyWorkflow(ctx, c, name, defs[name], w.WorkflowType(), w.Role)
		if err != nil {
			return err
		}
		if !e.json() {
			fmt.Fprintf(e.stdout, "%-9s workflow %s (%s)\n", change, name, strings.ToLower(w.WorkflowType()))
		}
	}
	return nil
}

func newWfRun(e *env) *cobra.Command {
	var data, name string
	var wait bool
	cmd := &cobra.Command{
		Use:   "run MACHINE [-d INPUT] [--wait]",
		Short: "Start an execution (with --wait: and print its output)",
		Example: `  nimbus wf run signup -d '{"email":"ada@example.com"}'
  nimbus wf run signup -d @input.json --name signup-42 --wait`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			input, err := readData(e, data)
			if err != nil {
				return err
			}
			if len(strings.TrimSpace(string(input))) == 0 {
				input = []byte("{}")
			}
			ctx, c := cmd.Context(), e.client()
			arn := machineRef(args[0])
			if wait {
				sm, err := c.DescribeStateMachine(ctx, arn)
				if err != nil {
					return err
				}
				if sm.Type == "EXPRESS" {
					x, err := c.StartSyncExecution(ctx, arn, name, string(input))
					if err != nil {
						return err
					}
					return printOutcome(e, x)
				}
			}
			execARN, err := c.StartExecution(ctx, arn, name, string(input))
			if err != nil {
				return err
			}
			if !wait {
				if e.json() {
					return e.printJSON(map[string]string{"executionArn": execARN})
				}
				fmt.Fprintln(e.stdout, execARN)
				return nil
			}
			delay := 50 * time.Millisecond
			for {
				x, err := c.DescribeExecution(ctx, execARN)
				if err != nil {
					return err
				}
				if x.Status != "RUNNING" {
					return printOutcome(e, x)
				}
				if !pause(ctx, delay) {
					return ctx.Err()
				}
				delay = min(delay*2, time.Second)
			}
		},
	}
	cmd.Flags().StringVarP(&data, "data", "d", "", "execution input: JSON text, @FILE, or - for stdin (default {})")
	cmd.Flags().StringVar(&name, "name", "", "execution name (default: a UUID)")
	cmd.Flags().BoolVarP(&wait, "wait", "w", false, "wait for the end and print the output")
	return cmd
}

// printOutcome prints a finished execution: its output, or its error (and
// then fails, so scripts see the exit code).
func printOutcome(e *env, x *api.WorkflowExecution) error {
	if e.json() {
		if err := e.printJSON(x); err != nil {
			return err
		}
	} else if x.Output != nil {
		fmt.Fprintln(e.stdout, *x.Output)
	}
	if x.Status != "SUCCEEDED" {
		msg := x.Status
		if x.Error != "" {
			msg += ": " + x.Error
		}
		if x.Cause != "" {
			msg += ": " + x.Cause
		}
		return fmt.Errorf("execution %s %s", x.ARN, msg)
	}
	return nil
}

func newWfList(e *env) *cobra.Command {
	var status string
	var limit int
	cmd := &cobra.Command{
		Use:     "ls [MACHINE]",
		Aliases: []string{"list"},
		Short:   "List state machines, or the executions of one",
		Example: "  nimbus wf ls\n  nimbus wf ls signup --status FAILED",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, c := cmd.Context(), e.client()
			if len(args) == 0 {
				sms, err := c.ListStateMachines(ctx)
				if err != nil {
					return err
				}
				if e.json() {
					return e.printJSON(sms)
				}
				if len(sms) == 0 {
					fmt.Fprintln(e.stdout, "No workflows yet. Create one: nimbus wf create NAME -f definition.json")
					return nil
				}
				tw := e.table()
				fmt.Fprintln(tw, "NAME\tTYPE\tCREATED")
				for _, sm := range sms {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", sm.Name, sm.Type, ago(sm.CreationDate.Time))
				}
				return tw.Flush()
			}
			xs, err := c.ListExecutions(ctx, machineRef(args[0]), strings.ToUpper(status), limit)
			if err != nil {
				return err
			}
			if e.json() {
				return e.printJSON(xs)
			}
			if len(xs) == 0 {
				fmt.Fprintf(e.stdout, "No executions of %s.\n", args[0])
				return nil
			}
			tw := e.table()
			fmt.Fprintln(tw, "NAME\tSTATUS\tSTARTED\tDURATION")
			for _, x := range xs {
				d := "-"
				if !x.StopDate.IsZero() {
					d = x.StopDate.Sub(x.StartDate.Time).Round(time.Millisecond).String()
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", x.Name, x.Status, ago(x.StartDate.Time), d)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&status, "status", "", "only executions with this status (RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED)")
	cmd.Flags().IntVarP(&limit, "limit", "n", 100, "how many executions")
	return cmd
}

func newWfDescribe(e *env) *cobra.Command {
	return &cobra.Command{
		Use:     "describe MACHINE | MACHINE:EXECUTION | ARN",
		Short:   "Show a state machine or an execution",
		Example: "  nimbus wf describe signup\n  nimbus wf describe signup:run-42",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, c := cmd.Context(), e.client()
			ref := args[0]
			isExec := strings.Contains(ref, ":execution:") || strings.Contains(ref, ":express:") || (!strings.HasPrefix(ref, "arn:") && strings.Contains(ref, ":"))
			if !isExec {
				sm, err := c.DescribeStateMachine(ctx, machineRef(ref))
				if err != nil {
					return err
				}
				if e.json() {
					return e.printJSON(sm)
				}
				tw := e.table()
				fmt.Fprintf(tw, "Name:\t%s\nARN:\t%s\nType:\t%s\nStatus:\t%s\nRevision:\t%s\nCreated:\t%s\n", sm.Name, sm.ARN, sm.Type, sm.Status, sm.RevisionID, sm.CreationDate.Local().Format(time.RFC3339))
				tw.Flush()
				fmt.Fprintf(e.stdout, "Definition:\n%s\n", sm.Definition)
				return nil
			}
			arn, err := execRef(ref)
			if err != nil {
				return err
			}
			x, err := c.DescribeExecution(ctx, arn)
			if err != nil {
				return err
			}
			if e.json() {
				return e.printJSON(x)
			}
			tw := e.table()
			row := func(k string, v any) { fmt.Fprintf(tw, "%s:\t%v\n", k, v) }
			row("Name", x.Name)
			row("ARN", x.ARN)
			row("State machine", x.StateMachineARN)
			row("Status", x.Status)
			row("Started", x.StartDate.Local().Format(time.RFC3339Nano))
			if !x.StopDate.IsZero() {
				row("Stopped", x.StopDate.Local().Format(time.RFC3339Nano))
				row("Duration", x.StopDate.Sub(x.StartDate.Time))
			}
			row("Input", x.Input)
			if x.Output != nil {
				row("Output", *x.Output)
			}
			if x.Error != "" {
				row("Error", x.Error)
			}
			if x.Cause != "" {
				row("Cause", x.Cause)
			}
			return tw.Flush()
		},
	}
}

func newWfHistory(e *env) *cobra.Command {
	var noData bool
	cmd := &cobra.Command{
		Use:     "history MACHINE:EXECUTION | ARN",
		Short:   "Show an execution's history events",
		Example: "  nimbus wf history signup:run-42\n  nimbus wf history signup:run-42 -o json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			arn, err := execRef(args[0])
			if err != nil {
				return err
			}
			evs, err := e.client().ExecutionHistory(cmd.Context(), arn, !noData)
			if err != nil {
				return err
			}
			if e.json() {
				out := make([]map[string]any, 0, len(evs))
				for _, ev := range evs {
					m := map[string]any{"id": ev.ID, "previousEventId": ev.PreviousEventID, "type": ev.Type, "timestamp": ev.Timestamp.Time}
					if len(ev.Details) > 0 {
						m["details"] = ev.Details
					}
					out = append(out, m)
				}
				return e.printJSON(out)
			}
			tw := e.table()
			fmt.Fprintln(tw, "ID\tTIME\tTYPE\tDETAILS")
			for _, ev := range evs {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", ev.ID, ev.Timestamp.Local().Format("15:04:05.000"), ev.Type, summarize(ev.Details))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&noData, "no-data", false, "leave out inputs and outputs")
	return cmd
}

// summarize shortens an event's details to one line.
func summarize(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil {
		return ""
	}
	var parts []string
	for _, k := range []string{"name", "resource", "error", "cause", "input", "output", "parameters", "index", "length"} {
		if v, ok := m[k]; ok {
			s := fmt.Sprint(v)
			if len(s) > 60 {
				s = s[:57] + "..."
			}
			parts = append(parts, k+"="+s)
		}
	}
	return strings.Join(parts, " ")
}

func newWfStop(e *env) *cobra.Command {
	var errName, cause string
	cmd := &cobra.Command{
		Use:     "stop MACHINE:EXECUTION | ARN",
		Short:   "Stop (abort) a running execution",
		Example: "  nimbus wf stop signup:run-42 --error Cancelled --cause 'customer left'",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			arn, err := execRef(args[0])
			if err != nil {
				return err
			}
			if err := e.client().StopExecution(cmd.Context(), arn, errName, cause); err != nil {
				return err
			}
			if e.json() {
				return e.printJSON(map[string]string{"stopped": arn})
			}
			fmt.Fprintf(e.stdout, "stopped %s\n", arn)
			return nil
		},
	}
	cmd.Flags().StringVar(&errName, "error", "", "error name recorded with the stop")
	cmd.Flags().StringVar(&cause, "cause", "", "cause recorded with the stop")
	return cmd
}

func newWfRemove(e *env) *cobra.Command {
	return &cobra.Command{
		Use:     "rm MACHINE...",
		Aliases: []string{"delete"},
		Short:   "Delete state machines (running executions go on to their end)",
		Example: "  nimbus wf rm checkout",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, name := range args {
				if err := e.client().DeleteStateMachine(cmd.Context(), machineRef(name)); err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
				if !e.json() {
					fmt.Fprintf(e.stdout, "deleted %s\n", name)
				}
			}
			if e.json() {
				return e.printJSON(map[string]any{"deleted": args})
			}
			return nil
		},
	}
}
