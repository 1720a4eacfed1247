package queue

import (
	"fmt"
	"unicode/utf8"

	"github.com/walq/walq/index"
	wlog "github.com/walq/walq/log"
)

// Bounds on a job's metadata (NewJob.Meta). Metadata is for headers (trace
// context, tenant, request ID), not data: the payload is for data.
const (
	// MaxMetaEntries is the most entries a job's metadata may have.
	MaxMetaEntries = 64
	// MaxMetaBytes is the most bytes of keys and values, together, a
	// job's metadata may have.
	MaxMetaBytes = 8 << 10
	// maxMetaKey is the longest metadata key, in bytes.
	maxMetaKey = 255
)

// MetaError is the error for metadata that NewJob.Meta may not hold. It
// matches ErrTooLarge when a bound is exceeded and ErrInvalid otherwise.
type MetaError struct {
	// Key is the offending entry's key; empty when the whole map is at
	// fault (too many entries or bytes).
	Key string
	// Reason says what is wrong.
	Reason string
	// Err is ErrInvalid or ErrTooLarge.
	Err error
}

// Error names the field and the key.
func (e *MetaError) Error() string {
	if e.Key == "" && e.Err == ErrTooLarge {
		return fmt.Sprintf("%v: NewJob.Meta: %s", e.Err, e.Reason)
	}
	return fmt.Sprintf("%v: NewJob.Meta[%q]: %s", e.Err, e.Key, e.Reason)
}

// Unwrap returns Err.
func (e *MetaError) Unwrap() error { return e.Err }

// CheckMeta checks job metadata as Enqueue does (at most MaxMetaEntries
// entries and MaxMetaBytes bytes, keys 1 to 255 bytes, keys and values
// valid UTF-8), returning a *MetaError or nil. Engines other than *Queue
// use it to refuse the same metadata.
func CheckMeta(m map[string]string) error { return checkMeta(m) }

// checkMeta checks m against the bounds and rules of NewJob.Meta.
func checkMeta(m map[string]string) error {
	if len(m) > MaxMetaEntries {
		return &MetaError{Reason: fmt.Sprintf("%d entries, limit %d (MaxMetaEntries)", len(m), MaxMetaEntries), Err: ErrTooLarge}
	}
	n := 0
	for k, v := range m {
		switch {
		case k == "":
			return &MetaError{Key: k, Reason: "empty key", Err: ErrInvalid}
		case len(k) > maxMetaKey:
			return &MetaError{Key: k[:32] + "…", Reason: fmt.Sprintf("key of %d bytes, limit %d", len(k), maxMetaKey), Err: ErrInvalid}
		case !utf8.ValidString(k):
			return &MetaError{Key: k, Reason: "key is not valid UTF-8", Err: ErrInvalid}
		case !utf8.ValidString(v):
			return &MetaError{Key: k, Reason: "value is not valid UTF-8", Err: ErrInvalid}
		}
		n += len(k) + len(v)
	}
	if n > MaxMetaBytes {
		return &MetaError{Reason: fmt.Sprintf("%d bytes of keys and values, limit %d (MaxMetaBytes)", n, MaxMetaBytes), Err: ErrTooLarge}
	}
	return nil
}

// metaSize is what m adds to a log entry, roughly.
func metaSize(m map[string]string) int {
	n := 0
	for k, v := range m {
		n += len(k) + len(v) + 4
	}
	return n
}

// readPayloads copies the payloads stored in the log at each location,
// with the metadata stored after each. The caller holds q.mu and readGate
// (see gateRead); q.mu is released during the reads and held again on
// return, readGate is released: it keeps compaction from removing the
// segments in the meantime.
func (q *Queue) readPayloads(locs ...index.Loc) ([][]byte, [][]byte, error) {
	q.mu.Unlock()
	defer func() {
		q.readGate.RUnlock()
		q.mu.Lock()
	}()
	payloads, metas := make([][]byte, len(locs)), make([][]byte, len(locs))
	for i, l := range locs {
		var err error
		if payloads[i], metas[i], err = q.readPayload(l); err != nil {
			return nil, nil, err
		}
	}
	return payloads, metas, nil
}

// readJob reads a job's payload, its metadata and its result (at result,
// a zero Loc for none) under the caller's hold of readGate, releasing q.mu
// and readGate as readPayloads does.
func (q *Queue) readJob(payload, result index.Loc) (p, meta, r []byte, err error) {
	q.mu.Unlock()
	defer func() {
		q.readGate.RUnlock()
		q.mu.Lock()
	}()
	if p, meta, err = q.readPayload(payload); err != nil {
		return nil, nil, nil, err
	}
	if r, err = q.readLoc(result); err != nil {
		return nil, nil, nil, err
	}
	return p, meta, r, nil
}

// readPayload copies a payload stored in the log and the encoded metadata
// stored after it (nil if none). Callers hold readGate.
func (q *Queue) readPayload(l index.Loc) (payload, meta []byte, err error) {
	if l.Index == 0 {
		return nil, nil, nil
	}
	data, err := q.log.Read(l.Index)
	if err != nil {
		return nil, nil, fromLower("read payload", err)
	}
	end := int(l.Off) + int(l.Len)
	if end > len(data) {
		return nil, nil, &CorruptError{Offset: -1, Index: l.Index, Record: -1,
			Reason: fmt.Sprintf("payload at offset %d of the entry runs past its end", l.Off)}
	}
	payload = append(make([]byte, 0, l.Len), data[l.Off:end]...)
	m, err := wlog.PayloadMeta(data, end)
	if err != nil {
		return nil, nil, &CorruptError{Offset: -1, Index: l.Index, Record: -1, Reason: err.Error()}
	}
	if m != nil {
		meta = append([]byte(nil), m...)
	}
	return payload, meta, nil
}

// decodeMeta decodes metadata read by readPayload for job id.
func decodeMeta(id uint64, raw []byte) (map[string]string, error) {
	if raw == nil {
		return nil, nil
	}
	m, err := wlog.DecodeMeta(raw)
	if err != nil {
		return nil, &CorruptError{Offset: -1, Record: -1, Reason: fmt.Sprintf("job %d: metadata: %v", id, err)}
	}
	return m, nil
}
