// Command apigwfn is an unmodified aws-lambda-go function written for API
// Gateway HTTP APIs (payload format 2.0), used as a test fixture: it runs on
// AWS as it is, and on Nimbus as a process function.
//
// With MODE=authorizer it is a function authorizer (simple responses):
// "Bearer allow-NAME" is allowed with context {"user": NAME, "call": the
// authorizer's own request id}, anything else is denied.
//
// Otherwise it answers by path:
//
//	/bin/...     the request body back as binary (base64 in the response)
//	/sleep/{ms}  sleeps, then answers
//	anything     a JSON description of the event it got, with two cookies
//	             set and the status from ?status=
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

type seen struct {
	RouteKey   string            `json:"routeKey"`
	Method     string            `json:"method"`
	RawPath    string            `json:"rawPath"`
	RawQuery   string            `json:"rawQuery"`
	Params     map[string]string `json:"params"`
	Query      map[string]string `json:"query"`
	Cookies    []string          `json:"cookies"`
	Headers    map[string]string `json:"headers"`
	Body       string            `json:"body"`
	Base64     bool              `json:"base64"`
	SourceIP   string            `json:"sourceIp"`
	RequestID  string            `json:"requestId"`
	JWTClaims  map[string]string `json:"jwtClaims,omitempty"`
	JWTScopes  []string          `json:"jwtScopes,omitempty"`
	LambdaAuth map[string]any    `json:"lambdaAuth,omitempty"`
	Domain     string            `json:"domain"`
}

func handle(ctx context.Context, req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	switch {
	case strings.HasPrefix(req.RawPath, "/bin"):
		body := req.Body
		if !req.IsBase64Encoded {
			body = base64.StdEncoding.EncodeToString([]byte(body))
		}
		return events.APIGatewayV2HTTPResponse{
			StatusCode:      200,
			Headers:         map[string]string{"Content-Type": "application/octet-stream"},
			Body:            body,
			IsBase64Encoded: true,
		}, nil
	case strings.HasPrefix(req.RawPath, "/sleep/"):
		ms, _ := strconv.Atoi(req.PathParameters["ms"])
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
		case <-ctx.Done():
		}
		return events.APIGatewayV2HTTPResponse{StatusCode: 200, Body: "slept"}, nil
	}
	s := seen{
		RouteKey: req.RouteKey, Method: req.RequestContext.HTTP.Method, RawPath: req.RawPath,
		RawQuery: req.RawQueryString, Params: req.PathParameters, Query: req.QueryStringParameters,
		Cookies: req.Cookies, Headers: req.Headers, Body: req.Body, Base64: req.IsBase64Encoded,
		SourceIP: req.RequestContext.HTTP.SourceIP, RequestID: req.RequestContext.RequestID,
		Domain: req.RequestContext.DomainName,
	}
	if a := req.RequestContext.Authorizer; a != nil {
		if a.JWT != nil {
			s.JWTClaims, s.JWTScopes = a.JWT.Claims, a.JWT.Scopes
		}
		s.LambdaAuth = a.Lambda
	}
	b, _ := json.Marshal(s)
	status := 200
	if v, err := strconv.Atoi(req.QueryStringParameters["status"]); err == nil {
		status = v
	}
	return events.APIGatewayV2HTTPResponse{
		StatusCode: status,
		Headers:    map[string]string{"Content-Type": "application/json", "X-Fixture": "apigwfn"},
		Cookies:    []string{"session=abc; Path=/; HttpOnly", "theme=dark"},
		Body:       string(b),
	}, nil
}

func authorize(ctx context.Context, req events.APIGatewayV2CustomAuthorizerV2Request) (events.APIGatewayV2CustomAuthorizerSimpleResponse, error) {
	call := ""
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		call = lc.AwsRequestID
	}
	tok := ""
	if len(req.IdentitySource) > 0 {
		tok = req.IdentitySource[0]
	}
	user, ok := strings.CutPrefix(tok, "Bearer allow-")
	if !ok {
		return events.APIGatewayV2CustomAuthorizerSimpleResponse{IsAuthorized: false}, nil
	}
	return events.APIGatewayV2CustomAuthorizerSimpleResponse{
		IsAuthorized: true,
		Context:      map[string]any{"user": user, "call": call, "route": req.RouteKey},
	}, nil
}

func main() {
	if os.Getenv("MODE") == "authorizer" {
		lambda.Start(authorize)
		return
	}
	lambda.Start(handle)
}
