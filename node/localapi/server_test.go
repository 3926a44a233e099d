package localapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kadtracker/kadtracker/records"
)

var started = time.Date(2026, 11, 22, 1, 2, 3, 0, time.UTC)

func fullBackend() *fakeBackend {
	return &fakeBackend{
		status: Status{
			PeerID:           "12D3KooWSelf",
			Addrs:            []string{"/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWSelf"},
			RoutingTableSize: 12,
			RecordsStored:    30,
			KeysStored:       5,
			Announced:        2,
			Replication:      8,
			DHTMode:          "server",
			Started:          started,
		},
		stored: 5,
		peers: []Peer{
			{IP: "127.0.0.1", Port: 6881, Seed: true, Announcer: "12D3KooWA"},
			{IP: "::1", Port: 51413, Announcer: "12D3KooWB"},
		},
		records: []Record{
			{IP: "192.0.2.1", Port: 6881, Seed: true, Announcer: "12D3KooWA", Expires: started.Add(30 * time.Minute)},
		},
		routing: []RoutingPeer{
			{PeerID: "12D3KooWA", Addrs: []string{"/ip4/127.0.0.1/tcp/4002"}, CPL: 1, Connected: true},
			{PeerID: "12D3KooWB", CPL: 3},
		},
	}
}

// do sends one request straight to the handler.
func do(t testing.TB, s http.Handler, method, target, body string) *httptest.ResponseRecorder {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest(method, target, r))
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q", method, target, ct)
	}
	if !strings.HasSuffix(w.Body.String(), "}\n") {
		t.Errorf("%s %s: body is not one newline-terminated object: %q", method, target, w.Body)
	}
	return w
}

// TestJSONShapes pins the wire form: docs/design.md's names, [] for empty lists.
func TestJSONShapes(t *testing.T) {
	full := fullBackend()
	full.records[0].Infohash = mustKey(t, hexV1)
	empty := &fakeBackend{status: Status{PeerID: "12D3KooWSelf", Started: started}}
	tests := []struct {
		name         string
		b            *fakeBackend
		method, path string
		body         string
		want         string
	}{
		{"status", full, "GET", "/v1/status", "",
			`{"peer_id":"12D3KooWSelf","addrs":["/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWSelf"],"routing_table_size":12,"records_stored":30,"keys_stored":5,"announced":2,"replication":8,"dht_mode":"server","started":"2026-11-22T01:02:03Z"}`},
		{"status empty", empty, "GET", "/v1/status", "",
			`{"peer_id":"12D3KooWSelf","addrs":[],"routing_table_size":0,"records_stored":0,"keys_stored":0,"announced":0,"replication":0,"dht_mode":"","started":"2026-11-22T01:02:03Z"}`},
		{"announce", full, "POST", "/v1/announce", `{"infohash":"` + hexV1 + `","port":6881,"seed":true}`,
			`{"stored_on":5,"targets":8}`},
		{"withdraw by CID", full, "POST", "/v1/withdraw", `{"infohash":"` + mustKey(t, hexV2).CID().String() + `"}`,
			`{"infohash":"` + hexV2 + `"}`},
		{"peers", full, "GET", "/v1/peers?infohash=" + hexV1, "",
			`{"peers":[{"ip":"127.0.0.1","port":6881,"seed":true,"announcer":"12D3KooWA"},{"ip":"::1","port":51413,"seed":false,"announcer":"12D3KooWB"}],"seeds":1,"leechers":2,"stats":{"hops":3,"queried":10,"asked":8,"answered":7,"duration_ms":12.5}}`},
		{"peers none", empty, "GET", "/v1/peers?infohash=" + hexV1, "",
			`{"peers":[],"seeds":1,"leechers":2,"stats":{"hops":3,"queried":10,"asked":8,"answered":7,"duration_ms":12.5}}`},
		{"records", full, "GET", "/v1/records", "",
			`{"records":[{"infohash":"` + hexV1 + `","ip":"192.0.2.1","port":6881,"seed":true,"announcer":"12D3KooWA","expires":"2026-11-22T01:32:03Z"}]}`},
		{"records none", empty, "GET", "/v1/records", "", `{"records":[]}`},
		{"routing", full, "GET", "/v1/routing", "",
			`{"peers":[{"peer_id":"12D3KooWA","addrs":["/ip4/127.0.0.1/tcp/4002"],"cpl":1,"connected":true},{"peer_id":"12D3KooWB","addrs":[],"cpl":3,"connected":false}]}`},
		{"routing none", empty, "GET", "/v1/routing", "", `{"peers":[]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := do(t, NewServer(tt.b, Options{}), tt.method, tt.path, tt.body)
			if w.Code != http.StatusOK {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			if got := strings.TrimSuffix(w.Body.String(), "\n"); got != tt.want {
				t.Errorf("body\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestBackendReceivesRequests(t *testing.T) {
	b := fullBackend()
	s := NewServer(b, Options{})
	do(t, s, "POST", "/v1/announce", `{"infohash":"`+strings.ToUpper(hexV1)+`","port":65535}`)
	do(t, s, "POST", "/v1/announce", ` {"seed":true,"port":1,"infohash":"`+hexV2+`"} `)
	do(t, s, "POST", "/v1/withdraw", `{"infohash":"`+hexV1+`"}`)
	do(t, s, "GET", "/v1/peers?infohash="+hexV1, "")
	do(t, s, "GET", "/v1/peers?want=7&infohash="+hexV2, "")
	do(t, s, "GET", "/v1/peers?infohash="+hexV1+"&want=5000", "")

	k1, k2 := mustKey(t, hexV1), mustKey(t, hexV2)
	if want := []announceCall{{k1, 65535, false}, {k2, 1, true}}; !reflect.DeepEqual(b.announced, want) {
		t.Errorf("announced %v, want %v", b.announced, want)
	}
	if want := []records.Key{k1}; !reflect.DeepEqual(b.withdrawn, want) {
		t.Errorf("withdrawn %v, want %v", b.withdrawn, want)
	}
	if want := []peersCall{{k1, DefaultWant}, {k2, 7}, {k1, MaxWant}}; !reflect.DeepEqual(b.looked, want) {
		t.Errorf("lookups %v, want %v", b.looked, want)
	}
}

func TestBadRequests(t *testing.T) {
	_, parseErr := records.ParseKey("xyz")
	tests := []struct {
		name               string
		method, path, body string
		code               int
		wantErr            string // substring of the error text
	}{
		{"bad infohash", "POST", "/v1/announce", `{"infohash":"xyz","port":1}`, 400, parseErr.Error()},
		{"short hex", "POST", "/v1/withdraw", `{"infohash":"0123"}`, 400, "bad infohash"},
		{"no infohash", "POST", "/v1/announce", `{"port":1}`, 400, "infohash is required"},
		{"port 0", "POST", "/v1/announce", `{"infohash":"` + hexV1 + `"}`, 400, "port 0 out of range 1..65535"},
		{"port too big", "POST", "/v1/announce", `{"infohash":"` + hexV1 + `","port":65536}`, 400, "port 65536 out of range"},
		{"port negative", "POST", "/v1/announce", `{"infohash":"` + hexV1 + `","port":-1}`, 400, "port -1 out of range"},
		{"port float", "POST", "/v1/announce", `{"infohash":"` + hexV1 + `","port":1.5}`, 400, "bad request body"},
		{"port huge", "POST", "/v1/announce", `{"infohash":"` + hexV1 + `","port":1e100}`, 400, "bad request body"},
		{"seed string", "POST", "/v1/announce", `{"infohash":"` + hexV1 + `","port":1,"seed":"yes"}`, 400, "bad request body"},
		{"unknown field", "POST", "/v1/announce", `{"infohash":"` + hexV1 + `","port":1,"ttl":5}`, 400, `unknown field "ttl"`},
		{"trailing object", "POST", "/v1/announce", `{"infohash":"` + hexV1 + `","port":1}{}`, 400, "data after the JSON object"},
		{"trailing garbage", "POST", "/v1/withdraw", `{"infohash":"` + hexV1 + `"}]`, 400, "bad request body"},
		{"empty body", "POST", "/v1/announce", ``, 400, "empty request body"},
		{"truncated", "POST", "/v1/announce", `{"infohash":`, 400, "bad request body"},
		{"array", "POST", "/v1/withdraw", `["` + hexV1 + `"]`, 400, "bad request body"},
		{"null", "POST", "/v1/withdraw", `null`, 400, "infohash is required"},
		{"too large", "POST", "/v1/announce", `{"infohash":"` + strings.Repeat(" ", MaxBodySize) + `"}`, 413, "larger than 65536 bytes"},
		{"too large after object", "POST", "/v1/withdraw", `{"infohash":"` + hexV1 + `"}` + strings.Repeat(" ", MaxBodySize), 413, "larger than"},
		{"peers no infohash", "GET", "/v1/peers", "", 400, "infohash is required"},
		{"peers bad infohash", "GET", "/v1/peers?infohash=xyz", "", 400, parseErr.Error()},
		{"peers want 0", "GET", "/v1/peers?infohash=" + hexV1 + "&want=0", "", 400, `want "0": want a positive number`},
		{"peers want negative", "GET", "/v1/peers?infohash=" + hexV1 + "&want=-3", "", 400, "positive number"},
		{"peers want word", "GET", "/v1/peers?infohash=" + hexV1 + "&want=many", "", 400, "positive number"},
		{"peers bad escape", "GET", "/v1/peers?infohash=%zz", "", 400, "bad query"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := fullBackend()
			w := do(t, NewServer(b, Options{}), tt.method, tt.path, tt.body)
			if w.Code != tt.code {
				t.Errorf("status %d, want %d (%s)", w.Code, tt.code, w.Body)
			}
			var eb errorBody
			if err := json.Unmarshal(w.Body.Bytes(), &eb); err != nil {
				t.Fatalf("error body %q: %v", w.Body, err)
			}
			if !strings.Contains(eb.Error, tt.wantErr) {
				t.Errorf("error %q, want it to contain %q", eb.Error, tt.wantErr)
			}
			if len(b.announced)+len(b.withdrawn)+len(b.looked) != 0 {
				t.Errorf("backend was called for a bad request")
			}
		})
	}
}

func TestMethodsAndPaths(t *testing.T) {
	s := NewServer(fullBackend(), Options{})
	endpoints := map[string]string{
		"/v1/status": "GET", "/v1/announce": "POST", "/v1/withdraw": "POST",
		"/v1/peers": "GET", "/v1/records": "GET", "/v1/routing": "GET",
	}
	for path, method := range endpoints {
		for _, wrong := range []string{"GET", "POST", "PUT", "DELETE", "HEAD"} {
			if wrong == method {
				continue
			}
			w := httptest.NewRecorder()
			s.ServeHTTP(w, httptest.NewRequest(wrong, path, strings.NewReader("{}")))
			if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != method {
				t.Errorf("%s %s: status %d, Allow %q; want 405, Allow %s", wrong, path, w.Code, w.Header().Get("Allow"), method)
			}
			if wrong != "HEAD" && !strings.Contains(w.Body.String(), `"error":`) {
				t.Errorf("%s %s: body %q", wrong, path, w.Body)
			}
		}
	}
	for _, path := range []string{"/", "/v1", "/v1/", "/v1/status/", "/v2/status", "/v1/Status", "/status"} {
		w := do(t, s, "GET", path, "")
		if w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), `"error":"no endpoint `) {
			t.Errorf("GET %s: %d %s, want 404 with a JSON error", path, w.Code, w.Body)
		}
	}
}

func TestBackendError(t *testing.T) {
	b := fullBackend()
	b.err = errors.New("node: no DHT servers known")
	s := NewServer(b, Options{})
	for _, r := range []struct{ method, path, body string }{
		{"GET", "/v1/status", ""},
		{"POST", "/v1/announce", `{"infohash":"` + hexV1 + `","port":1}`},
		{"POST", "/v1/withdraw", `{"infohash":"` + hexV1 + `"}`},
		{"GET", "/v1/peers?infohash=" + hexV1, ""},
		{"GET", "/v1/records", ""},
		{"GET", "/v1/routing", ""},
	} {
		w := do(t, s, r.method, r.path, r.body)
		if w.Code != 500 || w.Body.String() != `{"error":"node: no DHT servers known"}`+"\n" {
			t.Errorf("%s %s: %d %s", r.method, r.path, w.Code, w.Body)
		}
	}
}

func TestRequestTimeout(t *testing.T) {
	b := fullBackend()
	b.block = make(chan struct{}) // never closed
	s := NewServer(b, Options{})
	s.RequestTimeout = 20 * time.Millisecond
	w := do(t, s, "GET", "/v1/peers?infohash="+hexV1, "")
	if w.Code != 500 || !strings.Contains(w.Body.String(), context.DeadlineExceeded.Error()) {
		t.Errorf("%d %s, want 500 with a deadline error", w.Code, w.Body)
	}
}

// /v1/records answers in pages, so 500 000 stored records are not 100 MB
// in one answer; the client's Records walks every page.
func TestRecordsPages(t *testing.T) {
	b := &fakeBackend{}
	for i := range 2500 {
		var ih [20]byte
		ih[0], ih[1] = byte(i>>8), byte(i)
		b.records = append(b.records, Record{Infohash: records.SwarmKey(ih), IP: "192.0.2.1", Port: uint16(1 + i), Announcer: "12D3KooWpeer"})
	}
	path, stop := serve(t, b)
	defer stop()
	c := NewClient(path)
	ctx := t.Context()

	first, err := c.RecordsPage(ctx, "", 1000)
	if err != nil || len(first.Records) != 1000 || first.Next == "" {
		t.Fatalf("first page: %d records, next %q, %v", len(first.Records), first.Next, err)
	}
	second, err := c.RecordsPage(ctx, first.Next, 1000)
	if err != nil || len(second.Records) != 1000 || second.Records[0].Infohash.Hex() <= first.Records[999].Infohash.Hex() {
		t.Fatalf("second page: %d records, %v", len(second.Records), err)
	}
	last, err := c.RecordsPage(ctx, second.Next, 1000)
	if err != nil || len(last.Records) != 500 || last.Next != "" {
		t.Fatalf("last page: %d records, next %q, %v", len(last.Records), last.Next, err)
	}
	all, err := c.Records(ctx)
	if err != nil || len(all) != 2500 {
		t.Fatalf("Records: %d, %v", len(all), err)
	}
	seen := map[uint16]bool{}
	for _, r := range all {
		seen[r.Port] = true
	}
	if len(seen) != 2500 {
		t.Fatalf("Records returned %d distinct records of 2500", len(seen))
	}

	// Without limit= a page is DefaultRecordsLimit; a huge limit is clamped;
	// a bad one is refused.
	s := NewServer(b, Options{})
	var res RecordsResult
	rec := do(t, s, http.MethodGet, "/v1/records", "")
	if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil || len(res.Records) != DefaultRecordsLimit {
		t.Fatalf("default page: %d records, %v", len(res.Records), err)
	}
	rec = do(t, s, http.MethodGet, "/v1/records?limit=999999", "")
	if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil || len(res.Records) != 2500 {
		t.Fatalf("clamped page: %d records, %v", len(res.Records), err)
	}
	if rec := do(t, s, http.MethodGet, "/v1/records?limit=0", ""); rec.Code != http.StatusBadRequest {
		t.Fatalf("limit=0: %d %s", rec.Code, rec.Body)
	}
}
