package wire

import (
	"bytes"
	"slices"
)

// MaxScrapeHashes caps the infohashes of one scrape, HTTP or UDP: 74 is what
// fits a UDP scrape into a 1500-byte packet, and what trackers use over HTTP
// too (BEP 48 practice).
const MaxScrapeHashes = 74

// ParseScrape parses the raw query of GET /scrape: one or more info_hash
// parameters of 20 bytes each, at most MaxScrapeHashes. Other parameters are
// ignored. A scrape without info_hash (a "full scrape") is refused.
func ParseScrape(rawQuery string) ([][20]byte, error) {
	if len(rawQuery) > MaxQueryLen {
		return nil, errf(ErrBadQuery, "query of %d bytes exceeds %d", len(rawQuery), MaxQueryLen)
	}
	var hashes [][20]byte
	q := rawQuery
	for n := 0; q != ""; n++ {
		if n >= MaxQueryParams {
			return nil, errf(ErrBadQuery, "more than %d query parameters", MaxQueryParams)
		}
		var p param
		p, q = nextParam(q)
		if p.key == "" {
			continue
		}
		key, ok := unescape(p.key)
		if !ok {
			return nil, errf(ErrBadQuery, "malformed percent-escape in parameter name %s", quote(p.key))
		}
		if key != "info_hash" {
			continue
		}
		if len(hashes) == MaxScrapeHashes {
			return nil, errf(ErrBadQuery, "scrape of more than %d info_hash", MaxScrapeHashes)
		}
		var h [20]byte
		if err := parseHash20(&h, key, p.val); err != nil {
			return nil, err
		}
		hashes = append(hashes, h)
	}
	if len(hashes) == 0 {
		return nil, errf(ErrBadQuery, "scrape needs at least one info_hash (full scrape is not supported)")
	}
	return hashes, nil
}

// AppendScrapeQuery appends "info_hash=...&info_hash=..." (without '?').
func AppendScrapeQuery(dst []byte, hashes [][20]byte) []byte {
	for i := range hashes {
		if i > 0 {
			dst = append(dst, '&')
		}
		dst = append(dst, "info_hash="...)
		dst = appendEscaped(dst, string(hashes[i][:]))
	}
	return dst
}

// ScrapeFile is one entry of a scrape response (BEP 48).
type ScrapeFile struct {
	InfoHash   [20]byte
	Complete   int // seeders
	Downloaded int // completed downloads ever reported
	Incomplete int // leechers
}

// AppendScrapeResponse appends {"files": {infohash: {complete, downloaded,
// incomplete}}}, infohashes sorted; a repeated infohash is written once
// (its first entry).
func AppendScrapeResponse(dst []byte, files []ScrapeFile) []byte {
	sorted := slices.Clone(files)
	slices.SortStableFunc(sorted, func(a, b ScrapeFile) int { return bytes.Compare(a.InfoHash[:], b.InfoHash[:]) })
	sorted = slices.CompactFunc(sorted, func(a, b ScrapeFile) bool { return a.InfoHash == b.InfoHash })
	dst = append(dst, 'd')
	dst = appendStr(dst, "files")
	dst = append(dst, 'd')
	for i := range sorted {
		f := &sorted[i]
		dst = appendStr(dst, string(f.InfoHash[:]))
		dst = append(dst, 'd')
		dst = appendStr(dst, "complete")
		dst = appendInt(dst, int64(max(f.Complete, 0)))
		dst = appendStr(dst, "downloaded")
		dst = appendInt(dst, int64(max(f.Downloaded, 0)))
		dst = appendStr(dst, "incomplete")
		dst = appendInt(dst, int64(max(f.Incomplete, 0)))
		dst = append(dst, 'e')
	}
	return append(dst, 'e', 'e')
}

// ParseScrapeResponse decodes a scrape response (the client side), entries
// sorted by infohash. "failure reason" yields a *FailureError; missing
// counters read as 0; unknown keys are ignored.
func ParseScrapeResponse(b []byte) ([]ScrapeFile, error) {
	m, err := decodeDict(b)
	if err != nil {
		return nil, err
	}
	if v, ok := m["failure reason"]; ok {
		s, ok := v.(string)
		if !ok {
			return nil, errf(ErrBadResponse, "failure reason is not a string")
		}
		return nil, &FailureError{Reason: s}
	}
	fm, ok := m["files"].(map[string]any)
	if !ok {
		return nil, errf(ErrBadResponse, "scrape response without a files dictionary")
	}
	files := make([]ScrapeFile, 0, len(fm))
	for k, v := range fm {
		if len(k) != 20 {
			return nil, errf(ErrBadResponse, "scrape entry key of %d bytes, want 20", len(k))
		}
		d, ok := v.(map[string]any)
		if !ok {
			return nil, errf(ErrBadResponse, "scrape entry is not a dictionary")
		}
		f := ScrapeFile{InfoHash: [20]byte([]byte(k))}
		if f.Complete, err = count(d, "complete"); err != nil {
			return nil, err
		}
		if f.Downloaded, err = count(d, "downloaded"); err != nil {
			return nil, err
		}
		if f.Incomplete, err = count(d, "incomplete"); err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	slices.SortFunc(files, func(a, b ScrapeFile) int { return bytes.Compare(a.InfoHash[:], b.InfoHash[:]) })
	return files, nil
}
