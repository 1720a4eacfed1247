package wal

// growFor returns buf with room for n more bytes. It is walq's one change
// to tidwall/wal (v1.2.1): tidwall/wal keeps the whole tail segment in
// memory (segment.ebuf) and appended each entry to it with append, so the
// buffer was reallocated and copied, 1.25 times larger each time once large,
// every batch or two: about five copies and five bytes of garbage per byte
// logged, which made its writeBatch a fifth of walq's batch-enqueue CPU and
// its garbage most of the garbage collector's work. growFor gives a
// segment's buffer its full size (segSize and an eighth, since the batch
// that crosses segSize ends in the same segment) the first time it grows,
// and doubles it after that (a single batch larger than that), so that a
// segment's bytes are copied into it once. The memory it reserves is what
// the buffer would grow to anyway by the end of the segment.
func growFor(buf []byte, n, segSize int) []byte {
	if cap(buf)-len(buf) >= n {
		return buf
	}
	c := max(2*cap(buf), len(buf)+n)
	if len(buf)+n <= segSize {
		c = max(c, segSize+segSize/8)
	}
	nb := make([]byte, len(buf), c)
	copy(nb, buf)
	return nb
}
