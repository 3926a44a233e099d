package localapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzAnnounceRequest feeds arbitrary bodies to POST /v1/announce: the answer
// is always one JSON object, 200 only for a valid request, and the backend
// sees only valid keys and ports. Seeds are in testdata/fuzz.
func FuzzAnnounceRequest(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		b := &fakeBackend{stored: 1}
		w := httptest.NewRecorder()
		NewServer(b, Options{}).ServeHTTP(w, httptest.NewRequest("POST", "/v1/announce", strings.NewReader(string(body))))
		checkAnswer(t, w)
		if w.Code != http.StatusOK {
			if len(b.announced) != 0 {
				t.Fatalf("backend called for a rejected request (%d)", w.Code)
			}
			return
		}
		if len(b.announced) != 1 {
			t.Fatalf("200 after %d backend calls", len(b.announced))
		}
		a := b.announced[0]
		if a.Key.IsZero() || a.Port == 0 {
			t.Fatalf("backend got %+v", a)
		}
		// What was accepted reads back the same from its canonical form.
		canon, _ := json.Marshal(AnnounceRequest{Infohash: a.Key.Hex(), Port: int(a.Port), Seed: a.Seed})
		k, port, seed, err := parseAnnounce(strings.NewReader(string(canon)))
		if err != nil || k != a.Key || port != a.Port || seed != a.Seed {
			t.Fatalf("canonical form %s reads as %v %d %v, %v", canon, k, port, seed, err)
		}
	})
}

// FuzzPeersQuery feeds arbitrary query strings to GET /v1/peers.
func FuzzPeersQuery(f *testing.F) {
	f.Add("infohash=" + hexV1)
	f.Add("infohash=" + hexV2 + "&want=7")
	f.Add("want=1001&infohash=" + hexV1)
	f.Add("infohash=%zz")
	f.Fuzz(func(t *testing.T, rawQuery string) {
		b := &fakeBackend{}
		w := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "/v1/peers", nil)
		r.URL.RawQuery = rawQuery
		NewServer(b, Options{}).ServeHTTP(w, r)
		checkAnswer(t, w)
		if w.Code != http.StatusOK {
			return
		}
		if len(b.looked) != 1 || b.looked[0].Key.IsZero() || b.looked[0].Want < 1 || b.looked[0].Want > MaxWant {
			t.Fatalf("backend got %+v", b.looked)
		}
		if q, _ := url.ParseQuery(rawQuery); q.Get("want") == "" && b.looked[0].Want != DefaultWant {
			t.Fatalf("want %d without want=", b.looked[0].Want)
		}
	})
}

// checkAnswer checks that w holds one JSON object with the status it implies.
func checkAnswer(t *testing.T, w *httptest.ResponseRecorder) {
	t.Helper()
	switch w.Code {
	case http.StatusOK, http.StatusBadRequest, http.StatusRequestEntityTooLarge:
	default:
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
		t.Fatalf("answer %q is not a JSON object: %v", w.Body, err)
	}
	var eb errorBody
	json.Unmarshal(w.Body.Bytes(), &eb)
	if (w.Code == http.StatusOK) != (eb.Error == "") {
		t.Fatalf("status %d with error %q", w.Code, eb.Error)
	}
}

// FuzzRecordsQuery: any /v1/records query is a page of at most
// MaxRecordsLimit records or a 400, never a crash.
func FuzzRecordsQuery(f *testing.F) {
	f.Add("")
	f.Add("limit=2&after=" + hexV1 + "/12D3KooWpeer")
	f.Add("limit=-1")
	f.Add("limit=99999999999999999999")
	f.Add("after=%zz")
	b := &fakeBackend{}
	for i := range 5 {
		b.records = append(b.records, Record{Port: uint16(i + 1), Announcer: fmt.Sprint("p", i)})
	}
	f.Fuzz(func(t *testing.T, rawQuery string) {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "/v1/records", nil)
		r.URL.RawQuery = rawQuery
		NewServer(b, Options{}).ServeHTTP(w, r)
		checkAnswer(t, w)
		if w.Code != http.StatusOK && w.Code != http.StatusBadRequest {
			t.Fatalf("status %d", w.Code)
		}
	})
}
