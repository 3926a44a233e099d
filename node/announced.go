package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/kadtracker/kadtracker/records"
)

// announcedFile in DataDir holds the keys this node announces for its
// local clients, so a restart keeps announcing them.
const announcedFile = "announced.json"

// savedAnnouncements is announcedFile's content.
type savedAnnouncements struct {
	Version   int                 `json:"version"`
	Announced []savedAnnouncement `json:"announced"`
}

type savedAnnouncement struct {
	Key  records.Key `json:"key"`
	Port uint16      `json:"port"`
	Seed bool        `json:"seed,omitempty"`
	// Expires is when the last record published for the key expires on
	// the storing nodes; zero when none was taken yet.
	Expires time.Time `json:"expires,omitzero"`
}

// loadAnnounced reads the announcements saved in dir. A missing file is no
// announcement; a damaged one is moved aside to .bad and reported, since
// the next save would overwrite it.
func loadAnnounced(dir string) ([]savedAnnouncement, error) {
	path := filepath.Join(dir, announcedFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	var f savedAnnouncements
	if err := json.Unmarshal(b, &f); err != nil || f.Version != 1 {
		_ = os.Rename(path, path+".bad")
		if err == nil {
			err = fmt.Errorf("version %d", f.Version)
		}
		return nil, fmt.Errorf("node: %s unreadable (moved to %s.bad): %w", path, announcedFile, err)
	}
	out := f.Announced[:0]
	for _, a := range f.Announced {
		if !a.Key.IsZero() && a.Port != 0 {
			out = append(out, a)
		}
	}
	return out, nil
}

// saveAnnounced replaces the saved announcements atomically and durably.
func saveAnnounced(dir string, as []savedAnnouncement) error {
	b, err := json.MarshalIndent(savedAnnouncements{Version: 1, Announced: as}, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(dir, announcedFile)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// restoreAnnounced loads the saved announcements into n.announced, each
// due for publishing at once.
func (n *Node) restoreAnnounced() {
	saved, err := loadAnnounced(n.cfg.DataDir)
	if err != nil {
		n.log.Warn("saved announcements lost", "err", err)
		return
	}
	if len(saved) == 0 {
		return
	}
	now, lapsed := n.now(), 0
	n.mu.Lock()
	for _, a := range saved {
		n.announced[a.Key] = announcement{port: a.Port, seed: a.Seed, expires: a.Expires}
		n.sched[a.Key] = &pubState{} // due now
		if !a.Expires.After(now) {
			lapsed++
		}
	}
	n.mu.Unlock()
	if lapsed > 0 {
		n.log.Warn("restored announcements whose records expired while the node was down: the swarms lost this client meanwhile",
			"announcements", len(saved), "expired", lapsed)
	} else {
		n.log.Info("restored announcements", "announcements", len(saved))
	}
}

// persistAnnounced saves n.announced when it changed since the last save.
// Saves are serialized; a failure is logged and retried at the next call.
func (n *Node) persistAnnounced() {
	if n.cfg.DataDir == "" {
		return
	}
	n.saveMu.Lock()
	defer n.saveMu.Unlock()
	n.mu.Lock()
	if !n.announcedDirty {
		n.mu.Unlock()
		return
	}
	n.announcedDirty = false
	as := make([]savedAnnouncement, 0, len(n.announced))
	for k, a := range n.announced {
		if !a.transient {
			as = append(as, savedAnnouncement{Key: k, Port: a.port, Seed: a.seed, Expires: a.expires})
		}
	}
	n.mu.Unlock()
	if err := saveAnnounced(n.cfg.DataDir, as); err != nil {
		n.mu.Lock()
		n.announcedDirty = true
		n.mu.Unlock()
		n.log.Warn("saving announcements", "err", err)
	}
}
