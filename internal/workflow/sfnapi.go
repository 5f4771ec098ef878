package workflow

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nimbus-run/nimbus/internal/sigv4"
	"github.com/nimbus-run/nimbus/internal/workflow/asl"
)

// TargetPrefix is the X-Amz-Target prefix of the Step Functions API.
const TargetPrefix = "AWSStepFunctions."

// maxRequest bounds a request body: a definition may be 1 MiB, an input
// 256 KiB.
const maxRequest = 2 << 20

// Handler serves the Step Functions API: POST / with X-Amz-Target
// AWSStepFunctions.<Operation> and a JSON 1.0 body. Errors have the shape
// AWS SDKs decode: HTTP 400 and {"__type": "StateMachineDoesNotExist",
// "message": "..."}.
func (s *Service) Handler() http.Handler { return http.HandlerFunc(s.serveAPI) }

func (s *Service) serveAPI(w http.ResponseWriter, r *http.Request) {
	op, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), TargetPrefix)
	if !ok || r.Method != http.MethodPost {
		writeAWSError(w, &Error{Type: errUnknownOperation, Message: "expected POST with X-Amz-Target: " + TargetPrefix + "<Operation>", Status: 400})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequest))
	if err != nil {
		writeAWSError(w, apiErr(errValidation, "request body: %v", err))
		return
	}
	if err := s.authorize(r, body); err != nil {
		writeAWSError(w, toAPIError(err))
		return
	}
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	h, ok := apiOps[op]
	if !ok {
		writeAWSError(w, apiErr(errUnknownOperation, "Nimbus does not implement the operation %s", op))
		return
	}
	out, err := h(s, r.Context(), body)
	if err != nil {
		writeAWSError(w, toAPIError(err))
		return
	}
	b, err := json.Marshal(out)
	if err != nil {
		writeAWSError(w, toAPIError(err))
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	w.Write(b) //nolint:errcheck // the client went away
}

// authorize lets dev mode through, then the admin bearer token, then
// requests signed with SigV4 by an access key the node knows, scoped to
// the states service.
func (s *Service) authorize(r *http.Request, body []byte) error {
	if s.cfg.Dev {
		return nil
	}
	auth := r.Header.Get("Authorization")
	if tok, ok := strings.CutPrefix(auth, "Bearer "); ok {
		if s.cfg.Token != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(s.cfg.Token)) == 1 {
			return nil
		}
		return &Error{Type: errUnrecognizedClient, Message: "The security token included in the request is invalid.", Status: 400}
	}
	if s.cfg.Credentials == nil {
		return &Error{Type: errUnrecognizedClient, Message: "The security token included in the request is invalid: send the admin token as 'Authorization: Bearer <token>' (or run the node with --dev)", Status: 400}
	}
	id, err := sigv4.Verify(r, body, s.cfg.Credentials.Lookup, time.Now())
	switch {
	case err == nil && id.Service != "states":
		return &Error{Type: "InvalidSignatureException", Message: "Credential should be scoped to correct service: 'states'.", Status: 400}
	case err == nil:
		return nil
	case errors.Is(err, sigv4.ErrMissingAuth):
		return &Error{Type: "MissingAuthenticationTokenException", Message: "Missing Authentication Token: sign the request with a Nimbus access key (nimbus keys create) or send the admin token as a bearer token", Status: 400}
	case errors.Is(err, sigv4.ErrUnknownKey):
		return &Error{Type: errUnrecognizedClient, Message: "The security token included in the request is invalid.", Status: 400}
	case errors.Is(err, sigv4.ErrMalformed):
		return &Error{Type: "IncompleteSignatureException", Message: strings.TrimPrefix(err.Error(), "sigv4: "), Status: 400}
	case errors.Is(err, sigv4.ErrStale):
		return &Error{Type: "InvalidSignatureException", Message: "Signature expired: " + strings.TrimPrefix(err.Error(), "sigv4: stale date: "), Status: 400}
	}
	return &Error{Type: "InvalidSignatureException", Message: "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.", Status: 400}
}

func writeAWSError(w http.ResponseWriter, e *Error) {
	status := e.Status
	if status == 0 {
		status = http.StatusBadRequest
	}
	b, _ := json.Marshal(map[string]string{"__type": e.Type, "message": e.Message})
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.Header().Set("X-Amzn-ErrorType", e.Type)
	w.WriteHeader(status)
	w.Write(b) //nolint:errcheck // the client went away
}

// epoch is a timestamp as JSON 1.0 sends it: seconds since 1970, fractional.
type epoch time.Time

func (t epoch) MarshalJSON() ([]byte, error) {
	tt := time.Time(t)
	if tt.IsZero() {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, math.Round(float64(tt.UnixMilli()))/1e3, 'f', -1, 64), nil
}

func (t *epoch) UnmarshalJSON(b []byte) error {
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return err
	}
	*t = epoch(time.UnixMilli(int64(f * 1e3)).UTC())
	return nil
}

func epochPtr(t time.Time) *epoch {
	if t.IsZero() {
		return nil
	}
	e := epoch(t)
	return &e
}

type apiOp func(s *Service, ctx context.Context, body []byte) (any, error)

func decode[T any](body []byte) (*T, error) {
	v := new(T)
	if err := json.Unmarshal(body, v); err != nil {
		return nil, apiErr(errSerialization, "cannot read the request: %v", err)
	}
	return v, nil
}

type dataDetails struct {
	Included bool `json:"included"`
}

var apiOps = map[string]apiOp{
	"CreateStateMachine": func(s *Service, ctx context.Context, body []byte) (any, error) {
		in, err := decode[struct {
			Name       string `json:"name"`
			Definition string `json:"definition"`
			RoleArn    string `json:"roleArn"`
			Type       string `json:"type"`
		}](body)
		if err != nil {
			return nil, err
		}
		sm, err := s.CreateStateMachine(ctx, in.Name, in.Definition, in.Type, in.RoleArn)
		if err != nil {
			return nil, err
		}
		return map[string]any{"stateMachineArn": sm.ARN, "creationDate": epoch(sm.Created)}, nil
	},
	"UpdateStateMachine": func(s *Service, ctx context.Context, body []byte) (any, error) {
		in, err := decode[struct {
			ARN        string  `json:"stateMachineArn"`
			Definition *string `json:"definition"`
			RoleArn    *string `json:"roleArn"`
		}](body)
		if err != nil {
			return nil, err
		}
		sm, err := s.UpdateStateMachine(ctx, in.ARN, in.Definition, in.RoleArn)
		if err != nil {
			return nil, err
		}
		return map[string]any{"updateDate": epoch(sm.Updated), "revisionId": sm.RevisionID}, nil
	},
	"DescribeStateMachine": func(s *Service, ctx context.Context, body []byte) (any, error) {
		in, err := decode[struct {
			ARN string `json:"stateMachineArn"`
		}](body)
		if err != nil {
			return nil, err
		}
		sm, err := s.DescribeStateMachine(in.ARN)
		if err != nil {
			return nil, err
		}
		return map[string]any{
			"stateMachineArn": sm.ARN, "name": sm.Name, "status": "ACTIVE", "definition": sm.Definition,
			"roleArn": sm.RoleArn, "type": sm.Type, "creationDate": epoch(sm.Created), "revisionId": sm.RevisionID,
			"loggingConfiguration": map[string]any{"level": "OFF", "includeExecutionData": false},
			"tracingConfiguration": map[string]any{"enabled": false},
		}, nil
	},
	"ListStateMachines": func(s *Service, ctx context.Context, body []byte) (any, error) {
		in, err := decode[pageIn](body)
		if err != nil {
			return nil, err
		}
		all := s.ListStateMachines()
		lo, hi, next, err := in.page(len(all), 100)
		if err != nil {
			return nil, err
		}
		items := []map[string]any{}
		for _, sm := range all[lo:hi] {
			items = append(items, map[string]any{"stateMachineArn": sm.ARN, "name": sm.Name, "type": sm.Type, "creationDate": epoch(sm.Created)})
		}
		return map[string]any{"stateMachines": items, "nextToken": next}, nil
	},
	"DeleteStateMachine": func(s *Service, ctx context.Context, body []byte) (any, error) {
		in, err := decode[struct {
			ARN string `json:"stateMachineArn"`
		}](body)
		if err != nil {
			return nil, err
		}
		return struct{}{}, s.DeleteStateMachine(ctx, in.ARN)
	},
	"ValidateStateMachineDefinition": func(s *Service, ctx context.Context, body []byte) (any, error) {
		in, err := decode[struct {
			Definition string `json:"definition"`
		}](body)
		if err != nil {
			return nil, err
		}
		diags := []map[string]any{}
		if _, err := asl.Parse([]byte(in.Definition)); err != nil {
			var de *asl.DefinitionError
			if errors.As(err, &de) {
				for _, p := range de.Problems {
					diags = append(diags, map[string]any{"severity": "ERROR", "code": p.Code, "message": p.Message, "location": p.Path})
				}
			} else {
				diags = append(diags, map[string]any{"severity": "ERROR", "code": "INVALID_JSON_DESCRIPTION", "message": err.Error()})
			}
			return map[string]any{"result": "FAIL", "diagnostics": diags}, nil
		}
		return map[string]any{"result": "OK", "diagnostics": diags}, nil
	},
	"StartExecution": func(s *Service, ctx context.Context, body []byte) (any, error) {
		in, err := decode[startIn](body)
		if err != nil {
			return nil, err
		}
		e, err := s.StartExecution(ctx, in.ARN, in.Name, in.Input)
		if err != nil {
			return nil, err
		}
		return map[string]any{"executionArn": e.ARN, "startDate": epoch(e.Start)}, nil
	},
	"StartSyncExecution": func(s *Service, ctx context.Context, body []byte) (any, error) {
		in, err := decode[startIn](body)
		if err != nil {
			return nil, err
		}
		e, err := s.StartSyncExecution(ctx, in.ARN, in.Name, in.Input)
		if err != nil {
			return nil, err
		}
		out := executionOut(e, true)
		ms := e.Stop.Sub(e.Start).Milliseconds()
		out["billingDetails"] = map[string]any{"billedMemoryUsedInMB": 64, "billedDurationInMilliseconds": max((ms+99)/100*100, 100)}
		delete(out, "redriveCount")
		delete(out, "redriveStatus")
		return out, nil
	},
	"DescribeExecution": func(s *Service, ctx context.Context, body []byte) (any, error) {
		in, err := decode[struct {
			ARN          string `json:"executionArn"`
			IncludedData string `json:"includedData"`
		}](body)
		if err != nil {
			return nil, err
		}
		e, err := s.DescribeExecution(ctx, in.ARN)
		if err != nil {
			return nil, err
		}
		return executionOut(e, in.IncludedData != "METADATA_ONLY"), nil
	},
	"StopExecution": func(s *Service, ctx context.Context, body []byte) (any, error) {
		in, err := decode[struct {
			ARN   string `json:"executionArn"`
			Error string `json:"error"`
			Cause string `json:"cause"`
		}](body)
		if err != nil {
			return nil, err
		}
		t, err := s.StopExecution(ctx, in.ARN, in.Error, in.Cause)
		if err != nil {
			return nil, err
		}
		return map[string]any{"stopDate": epoch(t)}, nil
	},
	"ListExecutions": func(s *Service, ctx context.Context, body []byte) (any, error) {
		in, err := decode[struct {
			pageIn
			ARN    string `json:"stateMachineArn"`
			Status string `json:"statusFilter"`
		}](body)
		if err != nil {
			return nil, err
		}
		all, err := s.ListExecutions(ctx, in.ARN, in.Status)
		if err != nil {
			return nil, err
		}
		lo, hi, next, err := in.page(len(all), 100)
		if err != nil {
			return nil, err
		}
		items := []map[string]any{}
		for _, e := range all[lo:hi] {
			items = append(items, map[string]any{"executionArn": e.ARN, "stateMachineArn": e.StateMachineARN, "name": e.Name,
				"status": e.Status, "startDate": epoch(e.Start), "stopDate": epochPtr(e.Stop)})
		}
		return map[string]any{"executions": items, "nextToken": next}, nil
	},
	"GetExecutionHistory": func(s *Service, ctx context.Context, body []byte) (any, error) {
		in, err := decode[struct {
			pageIn
			ARN     string `json:"executionArn"`
			Reverse bool   `json:"reverseOrder"`
			Data    *bool  `json:"includeExecutionData"`
		}](body)
		if err != nil {
			return nil, err
		}
		events, err := s.History(ctx, in.ARN)
		if err != nil {
			return nil, err
		}
		if in.Reverse {
			for i, j := 0, len(events)-1; i < j; i, j = i+1, j-1 {
				events[i], events[j] = events[j], events[i]
			}
		}
		lo, hi, next, err := in.page(len(events), 100)
		if err != nil {
			return nil, err
		}
		withData := in.Data == nil || *in.Data
		out := make([]wireEvent, 0, hi-lo)
		for _, e := range events[lo:hi] {
			if !withData {
				e = withoutData(e)
			}
			out = append(out, wireEvent{Event: e, Timestamp: epoch(e.Timestamp)})
		}
		return map[string]any{"events": out, "nextToken": next}, nil
	},
	"SendTaskSuccess": func(s *Service, ctx context.Context, body []byte) (any, error) {
		in, err := decode[struct {
			Token  string `json:"taskToken"`
			Output string `json:"output"`
		}](body)
		if err != nil {
			return nil, err
		}
		return struct{}{}, s.SendTaskSuccess(ctx, in.Token, in.Output)
	},
	"SendTaskFailure": func(s *Service, ctx context.Context, body []byte) (any, error) {
		in, err := decode[struct {
			Token string `json:"taskToken"`
			Error string `json:"error"`
			Cause string `json:"cause"`
		}](body)
		if err != nil {
			return nil, err
		}
		return struct{}{}, s.SendTaskFailure(ctx, in.Token, in.Error, in.Cause)
	},
	"SendTaskHeartbeat": func(s *Service, ctx context.Context, body []byte) (any, error) {
		in, err := decode[struct {
			Token string `json:"taskToken"`
		}](body)
		if err != nil {
			return nil, err
		}
		return struct{}{}, s.SendTaskHeartbeat(ctx, in.Token)
	},
}

type startIn struct {
	ARN   string `json:"stateMachineArn"`
	Name  string `json:"name"`
	Input string `json:"input"`
}

func executionOut(e *Execution, withData bool) map[string]any {
	out := map[string]any{
		"executionArn": e.ARN, "stateMachineArn": e.StateMachineARN, "name": e.Name, "status": e.Status,
		"startDate": epoch(e.Start), "inputDetails": dataDetails{Included: withData},
		"redriveCount": 0, "redriveStatus": "NOT_REDRIVABLE",
	}
	if !e.Stop.IsZero() {
		out["stopDate"] = epoch(e.Stop)
	}
	if withData {
		out["input"] = e.Input
	}
	if e.Output != nil {
		out["outputDetails"] = dataDetails{Included: withData}
		if withData {
			out["output"] = *e.Output
		}
	}
	if e.Error != "" {
		out["error"] = e.Error
	}
	if e.Cause != "" {
		out["cause"] = e.Cause
	}
	return out
}

// wireEvent is a history event with its timestamp in JSON 1.0's form.
type wireEvent struct {
	asl.Event
	Timestamp epoch `json:"timestamp"`
}

// withoutData blanks the inputs and outputs of an event
// (includeExecutionData: false).
func withoutData(e asl.Event) asl.Event {
	if d := e.ExecutionStartedEventDetails; d != nil {
		c := *d
		c.Input = ""
		e.ExecutionStartedEventDetails = &c
	}
	if d := e.ExecutionSucceededEventDetails; d != nil {
		c := *d
		c.Output = ""
		e.ExecutionSucceededEventDetails = &c
	}
	if d := e.StateEnteredEventDetails; d != nil {
		c := *d
		c.Input = ""
		e.StateEnteredEventDetails = &c
	}
	if d := e.StateExitedEventDetails; d != nil {
		c := *d
		c.Output = ""
		e.StateExitedEventDetails = &c
	}
	if d := e.TaskScheduledEventDetails; d != nil {
		c := *d
		c.Parameters = ""
		e.TaskScheduledEventDetails = &c
	}
	if d := e.TaskSucceededEventDetails; d != nil {
		c := *d
		c.Output = ""
		e.TaskSucceededEventDetails = &c
	}
	if d := e.LambdaFunctionScheduledEventDetails; d != nil {
		c := *d
		c.Input = ""
		e.LambdaFunctionScheduledEventDetails = &c
	}
	if d := e.LambdaFunctionSucceededEventDetails; d != nil {
		c := *d
		c.Output = ""
		e.LambdaFunctionSucceededEventDetails = &c
	}
	return e
}

// pageIn is the pagination of list operations: nextToken is the offset of
// the next item, as text.
type pageIn struct {
	MaxResults int    `json:"maxResults"`
	NextToken  string `json:"nextToken"`
}

func (p pageIn) page(n, def int) (lo, hi int, next *string, err error) {
	size := p.MaxResults
	if size <= 0 {
		size = def
	}
	size = min(size, 1000)
	if p.NextToken != "" {
		raw, derr := b64.DecodeString(p.NextToken)
		v, perr := strconv.Atoi(string(raw))
		if derr != nil || perr != nil || v < 0 {
			return 0, 0, nil, apiErr("InvalidToken", "Invalid Token: '%s'", p.NextToken)
		}
		lo = min(v, n)
	}
	hi = min(lo+size, n)
	if hi < n {
		t := b64.EncodeToString([]byte(strconv.Itoa(hi)))
		next = &t
	}
	return lo, hi, next, nil
}
