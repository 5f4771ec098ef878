package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"time"
)

// Workflows are managed through the Step Functions API that every node
// serves (POST / with X-Amz-Target: AWSStepFunctions.<Operation>, JSON 1.0),
// so the CLI, AWS SDKs and the AWS CLI speak the same protocol. The types
// below are its wire shapes, as far as Nimbus uses them.

// SFNTargetPrefix is the X-Amz-Target prefix of the Step Functions API.
const SFNTargetPrefix = "AWSStepFunctions."

// Epoch is a JSON 1.0 timestamp: fractional seconds since 1970.
type Epoch struct{ time.Time }

func (t Epoch) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, math.Round(float64(t.UnixMilli()))/1e3, 'f', -1, 64), nil
}

func (t *Epoch) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*t = Epoch{}
		return nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return fmt.Errorf("timestamp %s: %w", b, err)
	}
	t.Time = time.UnixMilli(int64(math.Round(f * 1e3))).UTC()
	return nil
}

// StateMachine is DescribeStateMachine's answer (and a ListStateMachines item).
type StateMachine struct {
	ARN          string `json:"stateMachineArn"`
	Name         string `json:"name"`
	Type         string `json:"type"`
	Status       string `json:"status,omitempty"`
	Definition   string `json:"definition,omitempty"`
	RoleArn      string `json:"roleArn,omitempty"`
	RevisionID   string `json:"revisionId,omitempty"`
	CreationDate Epoch  `json:"creationDate"`
}

// WorkflowExecution is DescribeExecution's answer (and a ListExecutions item).
type WorkflowExecution struct {
	ARN             string  `json:"executionArn"`
	StateMachineARN string  `json:"stateMachineArn"`
	Name            string  `json:"name"`
	Status          string  `json:"status"`
	StartDate       Epoch   `json:"startDate"`
	StopDate        Epoch   `json:"stopDate"`
	Input           string  `json:"input,omitempty"`
	Output          *string `json:"output,omitempty"`
	Error           string  `json:"error,omitempty"`
	Cause           string  `json:"cause,omitempty"`
}

// HistoryEvent is one GetExecutionHistory event: the common fields, and
// the type's details as they came.
type HistoryEvent struct {
	ID              int64  `json:"id"`
	PreviousEventID int64  `json:"previousEventId"`
	Type            string `json:"type"`
	Timestamp       Epoch  `json:"timestamp"`
	// Details is the one "...EventDetails" object of the event, if any.
	Details json.RawMessage `json:"-"`
}

func (e *HistoryEvent) UnmarshalJSON(b []byte) error {
	type plain HistoryEvent
	if err := json.Unmarshal(b, (*plain)(e)); err != nil {
		return err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return err
	}
	for k, v := range all {
		if len(k) > len("EventDetails") && k[len(k)-len("EventDetails"):] == "EventDetails" {
			e.Details = v
		}
	}
	return nil
}

// SFN calls a Step Functions API operation (op is "StartExecution", ...).
// Errors are *Error with Code set to the exception name
// (StateMachineDoesNotExist, ...).
func (c *Client) SFN(ctx context.Context, op string, in, out any) error {
	if in == nil {
		in = struct{}{}
	}
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.BaseURL+"/", bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.0")
	req.Header.Set("X-Amz-Target", SFNTargetPrefix+op)
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach Nimbus at %s (is `nimbus up` running? set NIMBUS_URL or --server): %w", c.BaseURL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if resp.StatusCode >= 300 {
		var ae struct {
			Type    string `json:"__type"`
			Message string `json:"message"`
		}
		if json.Unmarshal(body, &ae) == nil && ae.Type != "" {
			return &Error{Code: ae.Type, Message: ae.Message, Status: resp.StatusCode}
		}
		return &Error{Code: http.StatusText(resp.StatusCode), Message: string(bytes.TrimSpace(body)), Status: resp.StatusCode}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%s: bad response: %w", op, err)
	}
	return nil
}

// CreateStateMachine creates a state machine and returns its ARN.
func (c *Client) CreateStateMachine(ctx context.Context, name, definition, typ, roleArn string) (string, error) {
	var out struct {
		ARN string `json:"stateMachineArn"`
	}
	err := c.SFN(ctx, "CreateStateMachine", map[string]string{"name": name, "definition": definition, "type": typ, "roleArn": roleArn}, &out)
	return out.ARN, err
}

// UpdateStateMachine replaces a state machine's definition (and role, when
// roleArn is not empty).
func (c *Client) UpdateStateMachine(ctx context.Context, arn, definition, roleArn string) error {
	in := map[string]string{"stateMachineArn": arn, "definition": definition}
	if roleArn != "" {
		in["roleArn"] = roleArn
	}
	return c.SFN(ctx, "UpdateStateMachine", in, nil)
}

// DescribeStateMachine returns a state machine by ARN (or name).
func (c *Client) DescribeStateMachine(ctx context.Context, arn string) (*StateMachine, error) {
	var out StateMachine
	return &out, c.SFN(ctx, "DescribeStateMachine", map[string]string{"stateMachineArn": arn}, &out)
}

// ListStateMachines returns every state machine.
func (c *Client) ListStateMachines(ctx context.Context) ([]StateMachine, error) {
	var all []StateMachine
	token := ""
	for {
		var out struct {
			StateMachines []StateMachine `json:"stateMachines"`
			NextToken     string         `json:"nextToken"`
		}
		in := map[string]any{"maxResults": 1000}
		if token != "" {
			in["nextToken"] = token
		}
		if err := c.SFN(ctx, "ListStateMachines", in, &out); err != nil {
			return nil, err
		}
		all = append(all, out.StateMachines...)
		if token = out.NextToken; token == "" {
			return all, nil
		}
	}
}

// DeleteStateMachine deletes a state machine.
func (c *Client) DeleteStateMachine(ctx context.Context, arn string) error {
	return c.SFN(ctx, "DeleteStateMachine", map[string]string{"stateMachineArn": arn}, nil)
}

// StartExecution starts an execution and returns its ARN.
func (c *Client) StartExecution(ctx context.Context, machineARN, name, input string) (string, error) {
	in := map[string]string{"stateMachineArn": machineARN, "input": input}
	if name != "" {
		in["name"] = name
	}
	var out struct {
		ARN string `json:"executionArn"`
	}
	err := c.SFN(ctx, "StartExecution", in, &out)
	return out.ARN, err
}

// StartSyncExecution runs an Express execution to its end.
func (c *Client) StartSyncExecution(ctx context.Context, machineARN, name, input string) (*WorkflowExecution, error) {
	in := map[string]string{"stateMachineArn": machineARN, "input": input}
	if name != "" {
		in["name"] = name
	}
	var out WorkflowExecution
	return &out, c.SFN(ctx, "StartSyncExecution", in, &out)
}

// DescribeExecution returns an execution.
func (c *Client) DescribeExecution(ctx context.Context, arn string) (*WorkflowExecution, error) {
	var out WorkflowExecution
	return &out, c.SFN(ctx, "DescribeExecution", map[string]string{"executionArn": arn}, &out)
}

// ListExecutions returns a state machine's executions, newest first
// (status filters them when not empty).
func (c *Client) ListExecutions(ctx context.Context, machineARN, status string, limit int) ([]WorkflowExecution, error) {
	in := map[string]any{"stateMachineArn": machineARN, "maxResults": limit}
	if status != "" {
		in["statusFilter"] = status
	}
	var out struct {
		Executions []WorkflowExecution `json:"executions"`
	}
	return out.Executions, c.SFN(ctx, "ListExecutions", in, &out)
}

// ExecutionHistory returns every history event of an execution.
func (c *Client) ExecutionHistory(ctx context.Context, arn string, withData bool) ([]HistoryEvent, error) {
	var all []HistoryEvent
	token := ""
	for {
		in := map[string]any{"executionArn": arn, "maxResults": 1000, "includeExecutionData": withData}
		if token != "" {
			in["nextToken"] = token
		}
		var out struct {
			Events    []HistoryEvent `json:"events"`
			NextToken string         `json:"nextToken"`
		}
		if err := c.SFN(ctx, "GetExecutionHistory", in, &out); err != nil {
			return nil, err
		}
		all = append(all, out.Events...)
		if token = out.NextToken; token == "" {
			return all, nil
		}
	}
}

// StopExecution aborts a running execution.
func (c *Client) StopExecution(ctx context.Context, arn, errName, cause string) error {
	in := map[string]string{"executionArn": arn}
	if errName != "" {
		in["error"] = errName
	}
	if cause != "" {
		in["cause"] = cause
	}
	return c.SFN(ctx, "StopExecution", in, nil)
}
