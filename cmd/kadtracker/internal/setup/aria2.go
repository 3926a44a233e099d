package setup

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// aria2 speaks aria2's JSON-RPC, the secret going first in every call's
// params as "token:SECRET".
//
// aria2 reads bt-tracker only when a torrent is added: aria2.changeOption
// takes bt-tracker for a download it already has, even restarts an active
// one for it, but the download keeps the announce list it was added with
// (tested with aria2 1.36). So setup cannot reach aria2's existing
// downloads; it lists them for the user, and sets the global bt-tracker
// (aria2.changeGlobalOption, until aria2 exits), which downloads added
// later copy.
type aria2 struct {
	*api
	secret string
	id     int
}

// aria2MaxWaiting bounds how many waiting downloads one call lists.
const aria2MaxWaiting = 100000

func (a *aria2) call(ctx context.Context, method string, result any, params ...any) error {
	if a.secret != "" {
		params = append([]any{"token:" + a.secret}, params...)
	}
	if params == nil {
		params = []any{}
	}
	a.id++
	body, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": fmt.Sprint(a.id), "method": method, "params": params})
	if err != nil {
		return err
	}
	req, err := a.request(ctx, http.MethodPost, a.endpoint, "application/json", body)
	if err != nil {
		return err
	}
	code, _, b, err := a.do(req)
	if err != nil {
		return err
	}
	var r struct {
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("aria2 %s: HTTP %d %s: %w", method, code, short(b), err)
	}
	if r.Error != nil {
		if r.Error.Message == "Unauthorized" {
			if a.secret == "" {
				return fmt.Errorf("%w: aria2 has an RPC secret (--rpc-secret)", ErrNeedPassword)
			}
			return fmt.Errorf("%w: aria2 refused the RPC secret", ErrAuth)
		}
		return fmt.Errorf("aria2 %s: %s", method, r.Error.Message)
	}
	if result == nil {
		return nil
	}
	if err := json.Unmarshal(r.Result, result); err != nil {
		return fmt.Errorf("aria2 %s: %w", method, err)
	}
	return nil
}

func (a *aria2) open(ctx context.Context) (string, error) {
	var v struct{ Version string }
	if err := a.call(ctx, "aria2.getVersion", &v); err != nil {
		return "", err
	}
	// bt-tracker and changeOption date from aria2 1.10 and 1.12; JSON-RPC
	// itself from 1.15: any aria2 that answers here has them.
	return "aria2 " + v.Version, nil
}

type aria2Download struct {
	GID        string `json:"gid"`
	Status     string `json:"status"`
	InfoHash   string `json:"infoHash"`
	Bittorrent *struct {
		AnnounceList [][]string `json:"announceList"`
		Info         struct {
			Name string `json:"name"`
		} `json:"info"`
	} `json:"bittorrent"`
}

func (a *aria2) torrents(ctx context.Context) ([]torrent, error) {
	keys := []string{"gid", "status", "infoHash", "bittorrent"}
	var active, waiting []aria2Download
	if err := a.call(ctx, "aria2.tellActive", &active, keys); err != nil {
		return nil, err
	}
	if err := a.call(ctx, "aria2.tellWaiting", &waiting, 0, aria2MaxWaiting, keys); err != nil {
		return nil, err
	}
	var ts []torrent
	for _, d := range append(active, waiting...) {
		if d.Bittorrent == nil || d.InfoHash == "" {
			continue // not a torrent, or a magnet link still fetching its metadata
		}
		t := torrent{ID: d.GID, Name: d.Bittorrent.Info.Name + " " + d.InfoHash, fixed: true}
		for _, tier := range d.Bittorrent.AnnounceList {
			t.Trackers = append(t.Trackers, tier...)
		}
		ts = append(ts, t)
	}
	return ts, nil
}

func (a *aria2) addTracker(context.Context, torrent, string) error { return errFixed }

func (a *aria2) removeTracker(context.Context, torrent, string) error { return errFixed }

func (a *aria2) defaults(ctx context.Context) (defaults, error) {
	var opt map[string]string
	if err := a.call(ctx, "aria2.getGlobalOption", &opt); err != nil {
		return defaults{}, err
	}
	return defaults{Supported: true, Enabled: true, Trackers: splitList(opt["bt-tracker"], ",")}, nil
}

func (a *aria2) setDefaults(ctx context.Context, d defaults) error {
	return a.call(ctx, "aria2.changeGlobalOption", nil, map[string]string{"bt-tracker": strings.Join(d.Trackers, ",")})
}

func (a *aria2) unsupportedNote(string) string { return "" }

func (a *aria2) fixedNote(tracker string, names []string) string {
	return fmt.Sprintf("aria2 cannot add a tracker to a download it already has; these keep their trackers: %s. To have them announce to %s, remove them in aria2 (keep the files) and add their .torrent again", strings.Join(names, "; "), tracker)
}
