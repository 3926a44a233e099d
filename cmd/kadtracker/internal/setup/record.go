package setup

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// RecordFile is the name of the records file in the daemon's data dir.
const RecordFile = "setup.json"

// Records are the records of every setup, by Record.Key.
type Records map[string]Record

// LoadRecords reads the records file; a missing file is no records.
func LoadRecords(path string) (Records, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Records{}, nil
	}
	if err != nil {
		return nil, err
	}
	rs := Records{}
	if err := json.Unmarshal(b, &rs); err != nil {
		return nil, fmt.Errorf("setup: %s: %w", path, err)
	}
	return rs, nil
}

// Find is the record of client at endpoint (its default if empty).
func (rs Records) Find(client, endpoint string) (Record, bool) {
	c := Config{Client: client, Endpoint: endpoint}
	r, ok := rs[Record{Client: client, Endpoint: c.endpoint()}.Key()]
	return r, ok
}

// Save writes the records atomically, readable by the user only.
func (rs Records) Save(path string) error {
	b, err := json.MarshalIndent(rs, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".setup-*.json")
	if err != nil {
		return err
	}
	_, err = tmp.Write(append(b, '\n'))
	err = errors.Join(err, tmp.Close())
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}
