package asl

import "time"

// Event is one history event, with the field names of the Step Functions
// GetExecutionHistory API. Exactly one details field is set, matching Type
// (some types, such as ParallelStateStarted, carry none).
type Event struct {
	Timestamp       time.Time `json:"timestamp"`
	Type            string    `json:"type"`
	ID              int64     `json:"id"`
	PreviousEventID int64     `json:"previousEventId"`

	ExecutionStartedEventDetails   *ExecutionStartedEventDetails `json:"executionStartedEventDetails,omitempty"`
	ExecutionSucceededEventDetails *OutputEventDetails           `json:"executionSucceededEventDetails,omitempty"`
	ExecutionFailedEventDetails    *FailureEventDetails          `json:"executionFailedEventDetails,omitempty"`
	ExecutionAbortedEventDetails   *FailureEventDetails          `json:"executionAbortedEventDetails,omitempty"`
	ExecutionTimedOutEventDetails  *FailureEventDetails          `json:"executionTimedOutEventDetails,omitempty"`

	StateEnteredEventDetails *StateEnteredEventDetails `json:"stateEnteredEventDetails,omitempty"`
	StateExitedEventDetails  *StateExitedEventDetails  `json:"stateExitedEventDetails,omitempty"`

	TaskScheduledEventDetails *TaskScheduledEventDetails `json:"taskScheduledEventDetails,omitempty"`
	TaskStartedEventDetails   *TaskResourceEventDetails  `json:"taskStartedEventDetails,omitempty"`
	TaskSucceededEventDetails *TaskSucceededEventDetails `json:"taskSucceededEventDetails,omitempty"`
	TaskFailedEventDetails    *TaskFailedEventDetails    `json:"taskFailedEventDetails,omitempty"`
	TaskTimedOutEventDetails  *TaskFailedEventDetails    `json:"taskTimedOutEventDetails,omitempty"`

	LambdaFunctionScheduledEventDetails *LambdaFunctionScheduledEventDetails `json:"lambdaFunctionScheduledEventDetails,omitempty"`
	LambdaFunctionSucceededEventDetails *OutputEventDetails                  `json:"lambdaFunctionSucceededEventDetails,omitempty"`
	LambdaFunctionFailedEventDetails    *FailureEventDetails                 `json:"lambdaFunctionFailedEventDetails,omitempty"`
	LambdaFunctionTimedOutEventDetails  *FailureEventDetails                 `json:"lambdaFunctionTimedOutEventDetails,omitempty"`

	MapStateStartedEventDetails       *MapStateStartedEventDetails `json:"mapStateStartedEventDetails,omitempty"`
	MapIterationStartedEventDetails   *MapIterationEventDetails    `json:"mapIterationStartedEventDetails,omitempty"`
	MapIterationSucceededEventDetails *MapIterationEventDetails    `json:"mapIterationSucceededEventDetails,omitempty"`
	MapIterationFailedEventDetails    *MapIterationEventDetails    `json:"mapIterationFailedEventDetails,omitempty"`
	MapIterationAbortedEventDetails   *MapIterationEventDetails    `json:"mapIterationAbortedEventDetails,omitempty"`
}

// HistoryEventExecutionDataDetails tells whether a payload was truncated.
type HistoryEventExecutionDataDetails struct {
	Truncated bool `json:"truncated"`
}

type ExecutionStartedEventDetails struct {
	Input        string                           `json:"input"`
	InputDetails HistoryEventExecutionDataDetails `json:"inputDetails"`
	RoleArn      string                           `json:"roleArn,omitempty"`
}

type OutputEventDetails struct {
	Output        string                           `json:"output"`
	OutputDetails HistoryEventExecutionDataDetails `json:"outputDetails"`
}

type FailureEventDetails struct {
	Error string `json:"error,omitempty"`
	Cause string `json:"cause,omitempty"`
}

type StateEnteredEventDetails struct {
	Name         string                           `json:"name"`
	Input        string                           `json:"input"`
	InputDetails HistoryEventExecutionDataDetails `json:"inputDetails"`
}

type StateExitedEventDetails struct {
	Name              string                           `json:"name"`
	Output            string                           `json:"output"`
	OutputDetails     HistoryEventExecutionDataDetails `json:"outputDetails"`
	AssignedVariables map[string]string                `json:"assignedVariables,omitempty"`
}

type TaskScheduledEventDetails struct {
	ResourceType       string `json:"resourceType"`
	Resource           string `json:"resource"`
	Region             string `json:"region"`
	Parameters         string `json:"parameters"`
	TimeoutInSeconds   int64  `json:"timeoutInSeconds,omitempty"`
	HeartbeatInSeconds int64  `json:"heartbeatInSeconds,omitempty"`
}

type TaskResourceEventDetails struct {
	ResourceType string `json:"resourceType"`
	Resource     string `json:"resource"`
}

type TaskSucceededEventDetails struct {
	ResourceType  string                           `json:"resourceType"`
	Resource      string                           `json:"resource"`
	Output        string                           `json:"output"`
	OutputDetails HistoryEventExecutionDataDetails `json:"outputDetails"`
}

type TaskFailedEventDetails struct {
	ResourceType string `json:"resourceType"`
	Resource     string `json:"resource"`
	Error        string `json:"error,omitempty"`
	Cause        string `json:"cause,omitempty"`
}

type LambdaFunctionScheduledEventDetails struct {
	Resource         string                           `json:"resource"`
	Input            string                           `json:"input"`
	InputDetails     HistoryEventExecutionDataDetails `json:"inputDetails"`
	TimeoutInSeconds int64                            `json:"timeoutInSeconds,omitempty"`
}

type MapStateStartedEventDetails struct {
	Length int `json:"length"`
}

type MapIterationEventDetails struct {
	Name  string `json:"name"`
	Index int    `json:"index"`
}
