package log

import (
	"bytes"
	"errors"
	"runtime"
	"sync"
	"testing"
)

// payloadOf decodes the payload of the single record of the entry at index.
func payloadOf(t testing.TB, l *Log, index uint64) []byte {
	t.Helper()
	data, err := l.Read(index)
	if err != nil {
		t.Fatalf("Read(%d): %v", index, err)
	}
	var out []byte
	if err := DecodeEntry(index, data, func(_ int, r *Record) error {
		out = append([]byte(nil), r.Payload...)
		return nil
	}); err != nil {
		t.Fatalf("DecodeEntry(%d): %v", index, err)
	}
	return out
}

// A read from a segment before the tail costs about the entry it returns,
// not the segment: tidwall/wal's Read loaded (and cached) whole segments.
func TestReadOldSegmentAllocatesEntryNotSegment(t *testing.T) {
	l := openLog(t, t.TempDir(), &Options{SegmentSize: 1 << 20})
	es := appendJobs(t, l, 1, 4001, 1000) // about 4 MiB: four segments
	if n := l.Segments(); n < 4 {
		t.Fatalf("%d segments, want at least 4", n)
	}
	for _, i := range []uint64{1, 1500, 2500} { // three segments before the tail
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		p := payloadOf(t, l, es[i-1].index)
		runtime.ReadMemStats(&after)
		if !bytes.Equal(p, payloadFor(i, 1000)) {
			t.Fatalf("entry %d: wrong payload", i)
		}
		if d := after.TotalAlloc - before.TotalAlloc; d > 256<<10 {
			t.Errorf("reading one 1 KiB entry of a 1 MiB segment allocated %d bytes", d)
		}
	}
}

// Damage in an old segment found by a read names the segment and the
// entry's offset in it.
func TestReadOldSegmentCorruptNamesOffset(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, withQuiet(&Options{SegmentSize: 64 << 10}))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	appendJobs(t, l, 1, 301, 500)
	segs := segmentsOf(t, dir)
	if len(segs) < 2 {
		t.Fatalf("%d segments, want at least 2", len(segs))
	}
	fs := framesOf(t, segs[0].path)
	f := fs[3]
	flipBit(t, segs[0].path, f.end()-2, 0) // inside entry first+3
	_, err = l.Read(segs[0].first + 3)
	ce := mustCorrupt(t, err)
	if ce.Segment != segs[0].path || ce.Offset != f.off || ce.Index != segs[0].first+3 {
		t.Fatalf("got %+v, want segment %s offset %d index %d", ce, segs[0].path, f.off, segs[0].first+3)
	}
	// The entries around it still read.
	if _, err := l.Read(segs[0].first + 2); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Read(segs[0].first + 4); err != nil {
		t.Fatal(err)
	}
}

// Reads of every segment run concurrently with appends that start new
// segments and with front truncation; each read returns its own entry or,
// once truncated, ErrNotFound.
func TestReadOldSegmentsConcurrently(t *testing.T) {
	l := openLog(t, t.TempDir(), &Options{SegmentSize: 32 << 10})
	appendJobs(t, l, 1, 201, 300)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 8)
	for g := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := uint64(g); ; k += 7 {
				select {
				case <-stop:
					return
				default:
				}
				i := 1 + k%l.LastIndex()
				data, err := l.Read(i)
				if errors.Is(err, ErrNotFound) {
					continue
				}
				if err == nil {
					err = DecodeEntry(i, data, func(_ int, r *Record) error {
						if !bytes.Equal(r.Payload, payloadFor(r.Job, 300)) {
							return errors.New("wrong payload")
						}
						return nil
					})
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for j := uint64(201); j < 1201; j++ {
		appendJobs(t, l, j, j+1, 300)
		if j%250 == 0 {
			if _, err := l.TruncateFront(l.LastIndex() - 300); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
