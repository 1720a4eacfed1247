package recovery

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/walq/walq/index"
	wlog "github.com/walq/walq/log"
)

// CheckpointName is the checkpoint file in a queue's directory (see
// index.WriteCheckpoint for its format); CheckpointName+".tmp" is the file
// a checkpoint is written to before it is renamed into place.
const CheckpointName = "CHECKPOINT"

// noCheckpoint is the reason reported when the directory has none.
const noCheckpoint = "no checkpoint"

// CheckpointReport says whether Open loaded a checkpoint.
type CheckpointReport struct {
	// Used is true when the state came from the checkpoint plus the
	// entries after it.
	Used bool
	// Reason says why no checkpoint was used ("no checkpoint", or the
	// damage or mismatch found); empty when Used.
	Reason string
	// Index is the last entry the checkpoint covers (0 if it did not
	// decode).
	Index uint64
	// Jobs is the number of jobs it held.
	Jobs int
	// Bytes is its size.
	Bytes int64
}

// loadCheckpoint builds the index from the checkpoint in l's directory and
// the entries after it. It returns nil and the reason when there is no
// usable checkpoint: the caller then replays the whole log. Only errors of
// the log itself that a full replay would meet too are returned as err
// (a segment that vanished under a read-only open).
func loadCheckpoint(l *wlog.Log, now time.Time, rep *Report, readOnly bool) (x *index.Index, reason string, err error) {
	f, err := os.Open(filepath.Join(l.Dir(), CheckpointName))
	if errors.Is(err, os.ErrNotExist) {
		return nil, noCheckpoint, nil
	}
	if err != nil {
		return nil, err.Error(), nil
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err.Error(), nil
	}
	x, meta, err := index.ReadCheckpoint(f, st.Size(), now.UnixNano())
	if err != nil {
		return nil, err.Error(), nil
	}
	rep.Checkpoint.Index, rep.Checkpoint.Jobs, rep.Checkpoint.Bytes = meta.Index, meta.Jobs, st.Size()
	first, last := l.FirstIndex(), l.LastIndex()
	switch {
	case meta.Index > last:
		return nil, fmt.Sprintf("checkpoint covers entry %d, but the log ends at %d", meta.Index, last), nil
	case meta.Index < first:
		return nil, fmt.Sprintf("checkpoint covers entry %d, but the log starts at %d", meta.Index, first), nil
	}
	data, err := l.Read(meta.Index)
	if err != nil {
		return nil, fmt.Sprintf("read entry %d: %v", meta.Index, err), nil
	}
	if uint32(len(data)) != meta.EntryLen || index.EntryHash(data) != meta.EntryHash {
		return nil, fmt.Sprintf("entry %d is not the entry the checkpoint covers (length %d, checksum differs)", meta.Index, len(data)), nil
	}
	x.Promote(now.UnixNano())
	if err := foldAfter(l, x, rep, meta.Index+1, readOnly); err != nil {
		if errors.Is(err, wlog.ErrVanished) {
			return nil, "", err
		}
		return nil, fmt.Sprintf("the entries after the checkpoint do not replay onto it: %v", err), nil
	}
	if first > meta.First {
		// The log was truncated after the checkpoint was written: every
		// job that was located before the new first entry must have been
		// restated (or purged) by the entries replayed since.
		var stale string
		x.Locs(func(id uint64, loc index.Loc) bool {
			if loc.Index < first {
				stale = fmt.Sprintf("job %d is located at entry %d, before the log's first entry %d", id, loc.Index, first)
			}
			return stale == ""
		})
		if stale != "" {
			return nil, stale, nil
		}
	}
	return x, "", nil
}

// tailEntries is how many entries after a checkpoint foldAfter reads one
// by one rather than by scanning their segments.
const tailEntries = 4096

// foldAfter folds the entries from index from to the end of l into x. A
// writer holds its tail segment in memory already: when few entries
// remain, reading them one by one costs less than scanning their segment
// files from disk again (a segment is up to SegmentSize bytes).
func foldAfter(l *wlog.Log, x *index.Index, rep *Report, from uint64, readOnly bool) error {
	last := l.LastIndex()
	if readOnly || last+1 < from || last+1-from > tailEntries {
		return foldFrom(l, x, rep, from)
	}
	for i := from; i <= last; i++ {
		data, err := l.Read(i)
		if err != nil {
			return err
		}
		err = wlog.DecodeEntry(i, data, func(slot int, r *wlog.Record) error {
			rep.Records++
			return x.Apply(r, index.Pos{Index: i, Slot: slot})
		})
		if err != nil {
			return err
		}
		rep.Entries++
	}
	return nil
}

// WriteCheckpoint writes x as the checkpoint of l, covering l's entries up
// to its last one, crash-safely: it writes CheckpointName+".tmp", fsyncs
// it, renames it over CheckpointName and fsyncs the directory. A crash at
// any step leaves the old checkpoint or the new one, and either is checked
// against the log at the next Open. x must hold exactly the state after
// every entry of l and must not change until encoded is called, which
// happens as soon as x has been read (before the fsyncs): the caller can
// then let it change again. step, if not nil, is asked before each step
// ("create", "write", "sync", "rename", "syncdir"); an error stops the
// write there, leaving the files as a crash would. It returns the
// checkpoint's size.
func WriteCheckpoint(l *wlog.Log, x *index.Index, step func(string) error, encoded func()) (int64, error) {
	release := func() {
		if encoded != nil {
			encoded()
			encoded = nil
		}
	}
	defer release()
	if step == nil {
		step = func(string) error { return nil }
	}
	n, err := writeTemp(l, x, step, release)
	if err != nil {
		return 0, fmt.Errorf("walq/recovery: write checkpoint: %w", err)
	}
	return n, nil
}

func writeTemp(l *wlog.Log, x *index.Index, step func(string) error, encoded func()) (int64, error) {
	last := l.LastIndex()
	if last == 0 {
		return 0, errors.New("empty log")
	}
	data, err := l.Read(last)
	if err != nil {
		return 0, err
	}
	meta := index.CheckpointMeta{Index: last, EntryLen: uint32(len(data)), EntryHash: index.EntryHash(data), First: l.FirstIndex()}
	path := filepath.Join(l.Dir(), CheckpointName)
	tmp := path + ".tmp"
	if err := step("create"); err != nil {
		return 0, err
	}
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if err := step("write"); err != nil {
		return 0, err
	}
	n, err := x.WriteCheckpoint(f, meta)
	encoded()
	if err == nil {
		err = step("sync")
	}
	if err == nil {
		// The bytes must be durable before the name points at them, or
		// a crash could leave the name on a torn file.
		err = f.Sync()
	}
	if err == nil {
		err = f.Close()
	}
	if err == nil {
		err = step("rename")
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = step("syncdir")
	}
	if err == nil {
		// Without it a crash may bring the old checkpoint back; that is
		// safe (it is checked against the log), only slower to open.
		err = syncDir(l.Dir())
	}
	return n, err
}

// syncDir fsyncs a directory so that a rename in it survives a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// RemoveCheckpointTemp removes a checkpoint temp file a crash left behind.
func RemoveCheckpointTemp(dir string) {
	os.Remove(filepath.Join(dir, CheckpointName+".tmp"))
}

// CheckpointCheck is what VerifyCheckpoint found.
type CheckpointCheck struct {
	// Present is true when the directory holds a checkpoint.
	Present bool
	// Used is true when it matches the log, so that Open would load it;
	// Reason says why not otherwise.
	Used   bool
	Reason string
	// Index and Jobs are the entry it covers and its job count.
	Index uint64
	Jobs  int
	// Matches is true when the state loaded from it (plus the entries
	// after it) equals the state a full replay of the log gives. Only
	// meaningful when Used.
	Matches bool
}

// VerifyCheckpoint compares l's checkpoint with a full replay of l. An
// error is the full replay's: the log itself does not replay.
func VerifyCheckpoint(l *wlog.Log, now time.Time) (CheckpointCheck, error) {
	var c CheckpointCheck
	rep := &Report{}
	x, reason, err := loadCheckpoint(l, now, rep, true)
	if err != nil {
		return c, err
	}
	c.Present = reason != noCheckpoint
	c.Used, c.Reason, c.Index, c.Jobs = x != nil, reason, rep.Checkpoint.Index, rep.Checkpoint.Jobs
	if x == nil {
		return c, nil
	}
	full, _, err := Replay(l, now)
	if err != nil {
		return c, err
	}
	var a, b bytes.Buffer
	if err := x.Digest(&a); err != nil {
		return c, err
	}
	if err := full.Digest(&b); err != nil {
		return c, err
	}
	c.Matches = bytes.Equal(a.Bytes(), b.Bytes())
	return c, nil
}
