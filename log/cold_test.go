package log

import (
	"bytes"
	"errors"
	"runtime"
	"slices"
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

// countingReader is an io.ReaderAt over b that counts the bytes it returns.
type countingReader struct {
	b    []byte
	read int64
}

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	r := bytes.NewReader(c.b)
	n, err := r.ReadAt(p, off)
	c.read += int64(n)
	return n, err
}

// scanFrames finds every whole frame, small or larger than its read
// window, stops quietly at a torn last frame wherever it is cut, and reads
// about one window per large frame rather than the whole segment.
func TestScanFramesOffsetsAndBytesRead(t *testing.T) {
	var file []byte
	want := []int64{0}
	for i, n := range []int{10, 300_000, 5, 200, scanWindow - 3, scanWindow, 1_000_000, 1, 0, 127, 128, 70_000} {
		file = append(file, framed(bytes.Repeat([]byte{byte(i)}, n))...)
		want = append(want, int64(len(file)))
	}
	seg := segment{path: "seg", first: 7}
	cr := &countingReader{b: file}
	got, err := scanFrames(cr, int64(len(file)), seg, maxEntryDefault)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("offsets %v, want %v", got, want)
	}
	if cr.read > 8*scanWindow {
		t.Fatalf("read %d bytes of a %d-byte segment to find %d frames", cr.read, len(file), len(want)-1)
	}
	// Cut anywhere, only the frames wholly before the cut count.
	for cut := int64(0); cut <= int64(len(file)); cut += 997 {
		got, err := scanFrames(&countingReader{b: file[:cut]}, cut, seg, maxEntryDefault)
		if err != nil {
			t.Fatalf("cut at %d: %v", cut, err)
		}
		k := 0
		for k+1 < len(want) && want[k+1] <= cut {
			k++
		}
		if !slices.Equal(got, want[:k+1]) {
			t.Fatalf("cut at %d: offsets %v, want %v", cut, got, want[:k+1])
		}
	}
	// A length over the limit is corruption naming its offset and index.
	bad := append(append([]byte(nil), file[:want[2]]...), framed(make([]byte, 100))...)
	_, err = scanFrames(&countingReader{b: bad}, int64(len(bad)), seg, 100_000)
	ce := mustCorrupt(t, err)
	if ce.Offset != want[1] || ce.Index != 8 {
		t.Fatalf("corruption at offset %d index %d, want %d and 8", ce.Offset, ce.Index, want[1])
	}
}
