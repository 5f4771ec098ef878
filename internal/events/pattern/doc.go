// Package pattern owns event patterns in the style of Amazon EventBridge:
// compiling a JSON pattern, deciding whether one event matches it, matching
// one event against many rules at once (Set), and the EventBridge-style input
// transformer that shapes what a rule's target receives (Transform).
//
// It does not own where rules are stored, how events reach a rule, or what a
// target is: the events package wires a Set to a stream and to the invoker.
// It does no I/O and keeps no global state.
//
// # What patterns address
//
// Events inside Nimbus are CloudEvents 1.0 in their JSON form (the structured
// mode of the JSON event format). A pattern addresses the context attributes
// at the top level and the payload under "data":
//
//	{
//	  "type":   ["com.example.order.created"],
//	  "source": [{"prefix": "/shop/"}],
//	  "data":   {"total": [{"numeric": [">", 100]}]}
//	}
//
// Extension attributes (for example "traceparent" or "tenant") are top-level
// fields like the standard ones. A payload carried as "data_base64" is opaque:
// patterns can only test "data_base64" as a string.
//
// # Semantics
//
// A pattern is a JSON object. A field whose value is an object descends into
// the event; a field whose value is an array is a leaf listing what the
// event's value may be. All fields of an object must match (AND); any element
// of a leaf array may match (OR); "$or" takes an array of two or more
// objects of which at least one must match. The leaf elements are:
//
//   - a string, number, true, false or null: exact match. Numbers compare by
//     value (5 matches 5.0), and never match a string ("5").
//   - {"prefix": "s"} and {"prefix": {"equals-ignore-case": "s"}}
//   - {"suffix": "s"} and {"suffix": {"equals-ignore-case": "s"}}
//   - {"equals-ignore-case": "s"}
//   - {"wildcard": "a*b"}: '*' matches any run of characters, "\*" a literal
//     star and "\\" a backslash; two '*' in a row are rejected.
//   - {"anything-but": v}, where v is a string, a number, a list of those, or
//     an object {"prefix"|"suffix"|"equals-ignore-case"|"wildcard": s or [s...]}.
//     It matches a present value that none of v matches; it never matches an
//     absent field.
//   - {"numeric": [op, n, ...]}: with op one of "<", "<=", "=", ">", ">=", at
//     most one lower and one upper bound, and "=" alone. Only JSON numbers match.
//   - {"exists": true|false}: presence of a leaf value. An object or an empty
//     array is not a leaf value, as in EventBridge.
//   - {"cidr": "10.0.0.0/24"}: an IPv4 or IPv6 address string inside the prefix.
//
// String operators only match strings. When the event's value is an array,
// the field matches when any element matches; arrays of objects keep their
// structure, so the fields matched inside one pattern object must all come
// from the same array element ("array consistency" in EventBridge's terms).
// A missing field, an object, or an empty array where a leaf was expected
// only satisfies {"exists": false}.
package pattern
