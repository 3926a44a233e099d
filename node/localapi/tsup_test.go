package localapi

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// tsupBackend is the view of a daemon that runs TSUP.
type tsupBackend struct{}

func (b tsupBackend) TSUPLinks(context.Context) ([]TSUPLink, error) {
	return []TSUPLink{{Addr: "127.0.0.1:6970", State: "connected", Mandates: -1, Swarms: 2}}, nil
}

func (b tsupBackend) TSUPSwarms(context.Context) ([]TSUPSwarm, error) {
	return nil, nil
}

func TestTSUPEndpoints(t *testing.T) {
	off := NewServer(fullBackend(), Options{})
	for _, path := range []string{"/v1/tsup/links", "/v1/tsup/swarms"} {
		rec := do(t, off, http.MethodGet, path, "")
		if rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), "TSUP is off") {
			t.Errorf("%s without TSUP: %d %s", path, rec.Code, rec.Body)
		}
	}
	on := NewServer(fullBackend(), Options{TSUP: tsupBackend{}})
	rec := do(t, on, http.MethodGet, "/v1/tsup/links", "")
	var links map[string][]map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &links); err != nil || rec.Code != http.StatusOK {
		t.Fatalf("links: %d %s (%v)", rec.Code, rec.Body, err)
	}
	if l := links["links"]; len(l) != 1 || l[0]["addr"] != "127.0.0.1:6970" || l[0]["state"] != "connected" || l[0]["mandates"] != -1.0 {
		t.Fatalf("links: %s", rec.Body)
	}
	if rec := do(t, on, http.MethodGet, "/v1/tsup/swarms", ""); rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != `{"swarms":[]}` {
		t.Fatalf("swarms: %d %s", rec.Code, rec.Body)
	}
	if rec := do(t, on, http.MethodPost, "/v1/tsup/links", ""); rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST links: %d", rec.Code)
	}
}
