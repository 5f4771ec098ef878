package data_test

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/data"
	"github.com/nimbus-run/nimbus/internal/function"
)

// TestCredentials checks function credentials through the HTTP API: a
// genuine one acts with its function's permissions, every time (verified
// ones are cached), and a forged one, whether its principal or its MAC was
// changed, is refused before and after the genuine one was cached.
func TestCredentials(t *testing.T) {
	n, c := startNode(t)
	ctx := context.Background()
	if _, err := c.PutTable(ctx, &api.Table{Name: "mine", Key: "id"}); err != nil {
		t.Fatal(err)
	}
	cred := n.Data.Credential(&function.Spec{Name: "fn"})
	payload, mac, _ := strings.Cut(strings.TrimPrefix(cred, data.CredentialPrefix), ".")
	other, _ := base64.RawURLEncoding.DecodeString(payload)
	forgedPrincipal := data.CredentialPrefix + base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(other), `"fn"`, `"fo"`, 1))) + "." + mac
	forgedMAC := cred[:len(cred)-2] + "AA"

	as := func(tok string) error {
		_, err := api.NewClient(n.URL(), tok).PutItem(ctx, "mine", &api.PutItemRequest{Item: raw(`{"id":"a"}`)})
		return err
	}
	isDenied := func(err error) bool {
		var e *api.Error
		return errors.As(err, &e) && e.Status == 403
	}
	for _, tok := range []string{forgedPrincipal, forgedMAC} {
		if err := as(tok); !isDenied(err) || !strings.Contains(err.Error(), "credential is not valid") {
			t.Fatalf("forged credential %s: %v, want 403, not valid", tok, err)
		}
	}
	for range 2 { // the second from the cache
		// fn is not deployed: the credential is genuine, the function
		// gone.
		if err := as(cred); !isDenied(err) || !strings.Contains(err.Error(), "function fn (version ) no longer exists") {
			t.Fatalf("genuine credential: %v, want 403 naming the function", err)
		}
	}
	for _, tok := range []string{forgedPrincipal, forgedMAC} {
		if err := as(tok); !isDenied(err) || !strings.Contains(err.Error(), "credential is not valid") {
			t.Fatalf("forged credential %s after a genuine one: %v, want 403, not valid", tok, err)
		}
	}
	p, err := n.Data.VerifyCredential(cred)
	if err != nil || p.Function != "fn" {
		t.Fatalf("VerifyCredential: %+v, %v", p, err)
	}
}
