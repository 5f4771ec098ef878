// Package asl interprets the Amazon States Language: it parses and validates
// state machine definitions and runs executions of them, step by step.
//
// The package owns the language: every state type (Pass, Task, Choice, Wait,
// Succeed, Fail, Parallel, Map), both query languages (JSONPath with payload
// templates and intrinsic functions; JSONata with Arguments, Output, Assign
// and $states), workflow variables, retriers and catchers, the predefined
// States.* errors and the 256 KiB payload limit. It does not own I/O: it
// never calls a function, reads a clock, sleeps, or persists anything.
//
// # Driving an execution
//
// Parse returns a *Machine (or a *DefinitionError). Machine.Start returns an
// *Execution that has already run every state it could. The executor then
// loops until Done:
//
//   - Pending lists the outstanding Actions: ActionTask (perform a Task
//     state's work, then Complete) and ActionTimer (call Fire at or after
//     Until; Waits, retry backoffs and the execution timeout are timers, so
//     no goroutine is held while waiting).
//   - Complete and Fire take the time of the event; the execution advances as
//     far as it can and records history events, taken with Events.
//   - json.Marshal(execution) is a complete snapshot at any point; a crashed
//     executor resumes with Machine.Restore and re-reads Pending.
//
// Given the same definition, input, ExecContext (which seeds the random
// stream used by States.UUID, States.MathRandom, $random, $uuid, task tokens
// and jitter) and the same sequence of Complete/Fire calls, an execution is
// fully deterministic.
//
// Tasks that call functions carry a FunctionCall: the executor only needs to
// invoke a function by name and qualifier with a payload; the interpreter
// builds the lambda:invoke response envelope and maps function errors
// (FunctionError) to the Error and Cause that Step Functions reports.
//
// Run is a synchronous convenience runner over the same API, for Express
// workflows and tests.
package asl
