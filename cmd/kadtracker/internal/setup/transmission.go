package setup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// transmission speaks Transmission's RPC: JSON over HTTP POST, with the
// X-Transmission-Session-Id handshake (a 409 answer carries the id to send)
// and optional basic authentication.
type transmission struct {
	*api
	user, pass string
	session    string
	rpcVersion int
}

const (
	// trMinRPC is the first RPC version with torrent-set trackerAdd and
	// trackerRemove (Transmission 2.10).
	trMinRPC = 10
	// trListRPC is the first with trackerList and default-trackers
	// (Transmission 4.0).
	trListRPC = 17
)

func (tr *transmission) call(ctx context.Context, method string, args any, result any) error {
	body, err := json.Marshal(map[string]any{"method": method, "arguments": args})
	if err != nil {
		return err
	}
	for range 2 { // the second try carries the session id from the 409
		req, err := tr.request(ctx, http.MethodPost, tr.endpoint, "application/json", body)
		if err != nil {
			return err
		}
		if tr.session != "" {
			req.Header.Set("X-Transmission-Session-Id", tr.session)
		}
		if tr.user != "" || tr.pass != "" {
			req.SetBasicAuth(tr.user, tr.pass)
		}
		code, h, b, err := tr.do(req)
		if err != nil {
			return err
		}
		switch code {
		case http.StatusConflict:
			tr.session = h.Get("X-Transmission-Session-Id")
			if tr.session == "" {
				return errors.New("transmission: 409 without a session id: is this Transmission's RPC URL?")
			}
			continue
		case http.StatusUnauthorized:
			if tr.pass == "" {
				return fmt.Errorf("%w: Transmission's RPC asks for a user name and password", ErrNeedPassword)
			}
			return ErrAuth
		case http.StatusForbidden:
			return fmt.Errorf("transmission refuses this address (rpc-whitelist or rpc-host-whitelist in its settings.json): %s", short(b))
		case http.StatusOK:
		default:
			return fmt.Errorf("transmission %s: HTTP %d %s", method, code, short(b))
		}
		var r struct {
			Result    string          `json:"result"`
			Arguments json.RawMessage `json:"arguments"`
		}
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("transmission %s: %w", method, err)
		}
		if r.Result != "success" {
			return fmt.Errorf("transmission %s: %s", method, r.Result)
		}
		if result == nil {
			return nil
		}
		if err := json.Unmarshal(r.Arguments, result); err != nil {
			return fmt.Errorf("transmission %s: %w", method, err)
		}
		return nil
	}
	return errors.New("transmission: session id refused twice")
}

func (tr *transmission) open(ctx context.Context) (string, error) {
	var s struct {
		RPCVersion int    `json:"rpc-version"`
		Version    string `json:"version"`
	}
	if err := tr.call(ctx, "session-get", map[string]any{"fields": []string{"rpc-version", "version"}}, &s); err != nil {
		return "", err
	}
	if s.RPCVersion < trMinRPC {
		return "", fmt.Errorf("%w: Transmission %s (RPC %d), want RPC %d or later (Transmission 2.10)", ErrOldVersion, s.Version, s.RPCVersion, trMinRPC)
	}
	tr.rpcVersion = s.RPCVersion
	return fmt.Sprintf("Transmission %s (RPC %d)", s.Version, s.RPCVersion), nil
}

type trTorrent struct {
	HashString  string `json:"hashString"`
	Name        string `json:"name"`
	IsPrivate   bool   `json:"isPrivate"`
	TrackerList string `json:"trackerList"`
	Trackers    []struct {
		Announce string `json:"announce"`
		ID       int    `json:"id"`
	} `json:"trackers"`
}

func (tr *transmission) torrents(ctx context.Context) ([]torrent, error) {
	fields := []string{"hashString", "name", "isPrivate", "trackers"}
	if tr.rpcVersion >= trListRPC {
		fields = append(fields, "trackerList")
	}
	var r struct{ Torrents []trTorrent }
	if err := tr.call(ctx, "torrent-get", map[string]any{"fields": fields}, &r); err != nil {
		return nil, err
	}
	ts := make([]torrent, 0, len(r.Torrents))
	for _, t := range r.Torrents {
		x := torrent{ID: t.HashString, Name: t.Name, private: t.IsPrivate, data: t}
		for _, a := range t.Trackers {
			x.Trackers = append(x.Trackers, a.Announce)
		}
		ts = append(ts, x)
	}
	return ts, nil
}

func (tr *transmission) addTracker(ctx context.Context, t torrent, u string) error {
	if tr.rpcVersion >= trListRPC {
		// trackerAdd is deprecated from RPC 17 on; trackerList is the
		// whole list, tiers separated by blank lines: ours is a tier of
		// its own.
		list := strings.TrimSpace(t.data.(trTorrent).TrackerList)
		if list != "" {
			list += "\n\n"
		}
		return tr.call(ctx, "torrent-set", map[string]any{"ids": []string{t.ID}, "trackerList": list + u}, nil)
	}
	return tr.call(ctx, "torrent-set", map[string]any{"ids": []string{t.ID}, "trackerAdd": []string{u}}, nil)
}

func (tr *transmission) removeTracker(ctx context.Context, t torrent, u string) error {
	tt := t.data.(trTorrent)
	if tr.rpcVersion >= trListRPC {
		return tr.call(ctx, "torrent-set", map[string]any{"ids": []string{t.ID}, "trackerList": withoutLine(tt.TrackerList, u)}, nil)
	}
	var ids []int
	for _, a := range tt.Trackers {
		if a.Announce == u {
			ids = append(ids, a.ID)
		}
	}
	return tr.call(ctx, "torrent-set", map[string]any{"ids": []string{t.ID}, "trackerRemove": ids}, nil)
}

func (tr *transmission) defaults(ctx context.Context) (defaults, error) {
	if tr.rpcVersion < trListRPC {
		return defaults{}, nil
	}
	var s map[string]json.RawMessage
	if err := tr.call(ctx, "session-get", map[string]any{"fields": []string{"default-trackers"}}, &s); err != nil {
		return defaults{}, err
	}
	raw, ok := s["default-trackers"]
	if !ok {
		return defaults{}, nil
	}
	var list string
	if err := json.Unmarshal(raw, &list); err != nil {
		return defaults{}, fmt.Errorf("transmission default-trackers: %w", err)
	}
	return defaults{Supported: true, Enabled: true, Trackers: splitList(list, "\n"), data: list}, nil
}

func (tr *transmission) setDefaults(ctx context.Context, d defaults) error {
	// Keep the user's tiers: drop our line, or add it as a tier of its own.
	old, _ := d.data.(string)
	list := old
	for _, u := range splitList(old, "\n") {
		if !slices.Contains(d.Trackers, u) {
			list = withoutLine(list, u)
		}
	}
	for _, u := range d.Trackers {
		if !slices.Contains(splitList(old, "\n"), u) {
			if strings.TrimSpace(list) != "" {
				list = strings.TrimSpace(list) + "\n\n"
			}
			list += u
		}
	}
	return tr.call(ctx, "session-set", map[string]any{"default-trackers": list}, nil)
}

func (tr *transmission) unsupportedNote(tracker string) string {
	return fmt.Sprintf("Transmission before 4.0 (RPC %d) has no default trackers: torrents added later do not get %s; run kadtracker setup transmission again after adding torrents, or add the tracker in the torrent's properties", trListRPC, tracker)
}

// withoutLine removes every line that is u from a tracker list whose tiers
// are separated by blank lines, and the blank lines left doubled.
func withoutLine(list, u string) string {
	var out []string
	for l := range strings.SplitSeq(list, "\n") {
		if strings.TrimSpace(l) == u {
			continue
		}
		if strings.TrimSpace(l) == "" && (len(out) == 0 || strings.TrimSpace(out[len(out)-1]) == "") {
			continue
		}
		out = append(out, l)
	}
	for len(out) > 0 && strings.TrimSpace(out[len(out)-1]) == "" {
		out = out[:len(out)-1]
	}
	return strings.Join(out, "\n")
}

func (tr *transmission) fixedNote(string, []string) string { return "" }
