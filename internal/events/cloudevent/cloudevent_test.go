package cloudevent

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func request(body string, kv ...string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/events", strings.NewReader(body))
	for i := 0; i < len(kv); i += 2 {
		r.Header.Set(kv[i], kv[i+1])
	}
	return r
}

// binaryHeaders is the HTTP binding spec's binary-mode example.
func binaryHeaders(extra ...string) []string {
	return append([]string{
		"ce-specversion", "1.0",
		"ce-type", "com.example.someevent",
		"ce-time", "2018-04-05T03:56:24Z",
		"ce-id", "1234-1234-1234",
		"ce-source", "/mycontext/subcontext",
		"Content-Type", "application/json; charset=utf-8",
	}, extra...)
}

func TestFromHTTP(t *testing.T) {
	tests := []struct {
		name      string
		req       *http.Request
		wantJSON  map[string]any // fields expected in ToJSON's output
		wantAbsen []string       // fields that must not be there
	}{
		{
			name: "binary mode spec example",
			req:  request(`{"much":"wow"}`, binaryHeaders("ce-comexampleextension1", "value")...),
			wantJSON: map[string]any{
				"specversion": "1.0", "type": "com.example.someevent", "id": "1234-1234-1234",
				"source": "/mycontext/subcontext", "time": "2018-04-05T03:56:24Z",
				"datacontenttype": "application/json; charset=utf-8", "comexampleextension1": "value",
				"data": map[string]any{"much": "wow"},
			},
			wantAbsen: []string{"data_base64"},
		},
		{
			name: "structured mode spec example",
			req: request(`{"specversion":"1.0","type":"com.example.someevent","source":"/mycontext","subject":null,"id":"C234-1234-1234",
				"time":"2018-04-05T17:31:00Z","comexampleextension1":"value","comexampleothervalue":5,
				"datacontenttype":"application/xml","data":"<much wow=\"xml\"/>"}`,
				"Content-Type", "application/cloudevents+json; charset=UTF-8"),
			wantJSON: map[string]any{
				"id": "C234-1234-1234", "source": "/mycontext", "datacontenttype": "application/xml",
				"data": `<much wow="xml"/>`, "comexampleextension1": "value", "comexampleothervalue": float64(5),
			},
		},
		{
			name: "structured data_base64",
			req: request(`{"specversion":"1.0","type":"t","source":"s","id":"1","datacontenttype":"application/octet-stream","data_base64":"AAEC"}`,
				"Content-Type", "application/cloudevents+json"),
			wantJSON:  map[string]any{"data_base64": "AAEC"},
			wantAbsen: []string{"data"},
		},
		{
			name:      "binary octet-stream becomes data_base64",
			req:       request("\x00\x01\x02", "ce-specversion", "1.0", "ce-type", "t", "ce-source", "s", "ce-id", "1", "Content-Type", "application/octet-stream"),
			wantJSON:  map[string]any{"data_base64": "AAEC"},
			wantAbsen: []string{"data"},
		},
		{
			name:     "binary text stays a string",
			req:      request("héllo", "ce-specversion", "1.0", "ce-type", "t", "ce-source", "s", "ce-id", "1", "Content-Type", "text/plain"),
			wantJSON: map[string]any{"data": "héllo"},
		},
		{
			name:      "binary without body",
			req:       request("", "ce-specversion", "1.0", "ce-type", "t", "ce-source", "s", "ce-id", "1"),
			wantJSON:  map[string]any{"type": "t"},
			wantAbsen: []string{"data", "data_base64"},
		},
		{
			name:     "binary cloudevents header case",
			req:      request(`1`, "Ce-Specversion", "1.0", "Ce-Type", "t", "Ce-Source", "s", "Ce-Id", "1", "Ce-Subject", "sub", "Content-Type", "application/json"),
			wantJSON: map[string]any{"subject": "sub", "data": float64(1)},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := FromHTTP(tc.req, 0)
			if err != nil {
				t.Fatalf("FromHTTP: %v", err)
			}
			b, err := ToJSON(e)
			if err != nil {
				t.Fatalf("ToJSON: %v", err)
			}
			var got map[string]any
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatalf("ToJSON output is not JSON: %v\n%s", err, b)
			}
			for k, want := range tc.wantJSON {
				g, _ := json.Marshal(got[k])
				w, _ := json.Marshal(want)
				if string(g) != string(w) {
					t.Errorf("%s = %s, want %s\nevent: %s", k, g, w, b)
				}
			}
			for _, k := range tc.wantAbsen {
				if _, ok := got[k]; ok {
					t.Errorf("%s present, want absent\nevent: %s", k, b)
				}
			}
			// The JSON form reads back to the same JSON.
			e2, err := FromJSON(b)
			if err != nil {
				t.Fatalf("FromJSON(ToJSON(e)): %v", err)
			}
			b2, err := ToJSON(e2)
			if err != nil || string(b2) != string(b) {
				t.Errorf("round trip =\n %s, %v\nwant\n %s", b2, err, b)
			}
		})
	}
}

func TestFromHTTPErrors(t *testing.T) {
	tests := []struct {
		name string
		req  *http.Request
		max  int64
		want error
		msg  string
	}{
		{"plain json", request(`{"a":1}`, "Content-Type", "application/json"), 0, ErrNotCloudEvent, "no ce-specversion header"},
		{"no content type", request(`{"a":1}`), 0, ErrNotCloudEvent, "no ce-specversion"},
		{"batch", request(`[]`, "Content-Type", "application/cloudevents-batch+json"), 0, ErrNotCloudEvent, "batch mode"},
		{"other format", request(`x`, "Content-Type", "application/cloudevents+xml"), 0, ErrNotCloudEvent, "unsupported event format"},
		{"too large", request(`{"specversion":"1.0"}`, "Content-Type", "application/cloudevents+json"), 5, ErrTooLarge, "more than 5 bytes"},
		{"structured bad json", request(`{"specversion":`, "Content-Type", "application/cloudevents+json"), 0, ErrMalformed, ""},
		{"structured missing id", request(`{"specversion":"1.0","type":"t","source":"s"}`, "Content-Type", "application/cloudevents+json"), 0, ErrMalformed, "id"},
		{"structured missing type", request(`{"specversion":"1.0","id":"1","source":"s"}`, "Content-Type", "application/cloudevents+json"), 0, ErrMalformed, "type"},
		{"structured bad extension name", request(`{"specversion":"1.0","id":"1","type":"t","source":"s","Bad-Name":"x"}`, "Content-Type", "application/cloudevents+json"), 0, ErrMalformed, ""},
		{"binary missing source", request(`{}`, "ce-specversion", "1.0", "ce-type", "t", "ce-id", "1", "Content-Type", "application/json"), 0, ErrMalformed, "source"},
		{"binary old specversion", request(`{}`, "ce-specversion", "0.3", "ce-type", "t", "ce-id", "1", "ce-source", "s"), 0, ErrMalformed, "specversion"},
		{"binary json content not json", request(`{nope`, binaryHeaders()...), 0, ErrMalformed, "not valid JSON"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := FromHTTP(tc.req, tc.max)
			if !errors.Is(err, tc.want) {
				t.Fatalf("FromHTTP error = %v, want %v", err, tc.want)
			}
			if tc.msg != "" && !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not mention %q", err, tc.msg)
			}
		})
	}
}

func TestNew(t *testing.T) {
	before := time.Now().Add(-time.Second)
	e, err := New("/nimbus/schedule", "nimbus.schedule.fired", "nightly", []byte(`{"n":1}`), "")
	if err != nil {
		t.Fatal(err)
	}
	e2, err := New("/nimbus/schedule", "nimbus.schedule.fired", "", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if e.ID() == "" || e.ID() == e2.ID() {
		t.Errorf("ids %q and %q: want unique, non-empty", e.ID(), e2.ID())
	}
	if e.Time().Before(before) || e.Time().After(time.Now().Add(time.Second)) {
		t.Errorf("time %s is not now", e.Time())
	}
	b, err := ToJSON(e)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got["subject"] != "nightly" || got["datacontenttype"] != "application/json" || got["specversion"] != "1.0" {
		t.Errorf("ToJSON = %s", b)
	}
	if d, _ := json.Marshal(got["data"]); string(d) != `{"n":1}` {
		t.Errorf("data = %s, want {\"n\":1}", d)
	}
	if _, ok := got["subject"]; !ok {
		t.Error("subject missing")
	}
	b2, _ := ToJSON(e2)
	if strings.Contains(string(b2), `"subject"`) || strings.Contains(string(b2), `"data`) {
		t.Errorf("empty subject/data leaked: %s", b2)
	}

	bin, err := New("s", "t", "", []byte{0xff, 0x00}, "application/octet-stream")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := ToJSON(bin); !strings.Contains(string(b), `"data_base64":"/wA="`) {
		t.Errorf("binary data = %s, want data_base64", b)
	}

	for _, c := range []struct{ src, typ, ct string }{{"", "t", ""}, {"s", "", ""}, {"s", "t", "application/json"}} {
		data := []byte(`{"ok":true}`)
		if c.ct != "" {
			data = []byte(`not json`)
		}
		if _, err := New(c.src, c.typ, "", data, c.ct); !errors.Is(err, ErrMalformed) {
			t.Errorf("New(%q, %q, ct %q) error = %v, want ErrMalformed", c.src, c.typ, c.ct, err)
		}
	}
}

func FuzzFromHTTP(f *testing.F) {
	f.Add("application/cloudevents+json", "", `{"specversion":"1.0","type":"t","source":"s","id":"1","data":{"a":1}}`)
	f.Add("application/json", "1.0", `{"a":1}`)
	f.Add("application/octet-stream", "1.0", "\x00\x01")
	f.Add("application/cloudevents+json", "", `{"specversion":"1.0","type":"t","source":"s","id":"1","datacontenttype":"text/plain","data_base64":"aGk="}`)
	f.Fuzz(func(t *testing.T, contentType, specversion, body string) {
		r := request(body, "Content-Type", contentType)
		if specversion != "" {
			r.Header.Set("ce-specversion", specversion)
			r.Header.Set("ce-type", "t")
			r.Header.Set("ce-source", "s")
			r.Header.Set("ce-id", "1")
		}
		e, err := FromHTTP(r, 4096)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrNotCloudEvent) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		// Every accepted event has a JSON form that is valid JSON and reads
		// back.
		b, err := ToJSON(e)
		if err != nil {
			t.Fatalf("ToJSON of an accepted event: %v", err)
		}
		if !json.Valid(b) {
			t.Fatalf("ToJSON produced invalid JSON: %q", b)
		}
		if _, err := FromJSON(b); err != nil {
			t.Fatalf("FromJSON(ToJSON(e)) = %v\n%s", err, b)
		}
	})
}
