// Package urlpath escapes object keys for URL paths, for the clients (the
// SDK, the API client) and for URLs the node mints (presigned URLs).
package urlpath

import (
	"net/url"
	"strings"
)

// Key escapes a key for an object route's path. Slashes stay
// readable, unless the key has segments that a router cleans away (empty
// ones, "." and ".."): the node's ServeMux answers such a path with a
// redirect to the cleaned path, which names another key ("a//b" is not
// "a/b"). Those keys are escaped whole, slashes included; the route's
// {key...} wildcard unescapes them back.
func Key(key string) string {
	parts := strings.Split(key, "/")
	for i, p := range parts {
		if p == "." || p == ".." || (p == "" && i < len(parts)-1) {
			s := url.PathEscape(key)
			if s == "." || s == ".." {
				s = strings.ReplaceAll(s, ".", "%2E")
			}
			return s
		}
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}
