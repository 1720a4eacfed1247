package wal

// bigBatch is the fraction of a segment from which a batch counts as large
// for growFor: 1/64, 64 KiB of a 4 MiB segment.
const bigBatch = 64

// growFor returns buf with room for n more bytes, for a batch of n bytes
// (frames included) about to be appended to a segment of segSize. It is
// walq's one change to tidwall/wal (v1.2.1): tidwall/wal keeps the whole
// tail segment in memory (segment.ebuf) and appended each batch to it with
// append, which, once the buffer is large, grows it by a quarter: a stream
// of large batches reallocated and copied the buffer every batch or two,
// about five bytes copied and five bytes of garbage per byte logged. That
// was a fifth of walq's batch-enqueue CPU and most of what made its garbage
// collector run. So for a large batch (at least segSize/bigBatch) growFor
// gives the buffer its segment's full size (and an eighth, since the batch
// that crosses segSize still ends in the segment) at once, or doubles it
// past that; the segment's bytes are then copied into it once. Small
// batches are left to append as before, so that a queue writing a few
// small entries after Open does not hold a segment-sized buffer for them.
func growFor(buf []byte, n, segSize int) []byte {
	if cap(buf)-len(buf) >= n || n < segSize/bigBatch {
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
