package localapi

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// bridgeBackend is the view of a daemon that bridges to classic trackers.
type bridgeBackend struct{}

func (b bridgeBackend) Bridge(context.Context) (BridgeState, error) {
	return BridgeState{
		Trackers: []string{"udp://t.example:6969/announce"},
		Swarms: []BridgeSwarm{{Infohash: strings.Repeat("ab", 20), Port: 6881, Trackers: []BridgeAnnounce{{
			URL: "udp://t.example:6969/announce", LastAnnounce: time.Unix(1e9, 0).UTC(), Fails: 2,
			Error: "tracker failure: not whitelisted", Failure: true,
		}}}},
	}, nil
}

func TestBridgeEndpoint(t *testing.T) {
	off := NewServer(fullBackend(), Options{})
	if rec := do(t, off, http.MethodGet, "/v1/bridge", ""); rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), "--bridge-trackers") {
		t.Errorf("without a bridge: %d %s", rec.Code, rec.Body)
	}
	rec := do(t, NewServer(fullBackend(), Options{Bridge: bridgeBackend{}}), http.MethodGet, "/v1/bridge", "")
	var got map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || rec.Code != http.StatusOK {
		t.Fatalf("%d %s (%v)", rec.Code, rec.Body, err)
	}
	sw := got["swarms"].([]any)[0].(map[string]any)
	tr := sw["trackers"].([]any)[0].(map[string]any)
	if sw["port"] != 6881.0 || tr["error"] != "tracker failure: not whitelisted" || tr["failure"] != true ||
		tr["last_announce"] != "2001-09-09T01:46:40Z" || tr["next_announce"] != nil || tr["fails"] != 2.0 {
		t.Errorf("answer %s", rec.Body)
	}
}
