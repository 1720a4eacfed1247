package log

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"testing"
)

// craftedTorn returns n bytes built so that three of every eight offsets
// pass anyValidAfter's cheap filter as a frame (a length that fits, the
// version byte, a msgpack array header) with frames of about 16 bytes, 2 KiB
// and 256 KiB, none of them valid: the worst case for a scan that
// checksums every candidate frame on its own.
func craftedTorn(n int) []byte {
	// At offset 0 mod 8: a 3-byte length 0x1f | 0x05<<7 | 16<<14, then the
	// version at +7 and 0x9f (a fixarray, also a continuation byte) at +8.
	// At 1 mod 8: a 2-byte length; at 2 mod 8: the 1-byte length 16.
	period := []byte{0x9f, 0x85, 16, 0xaa, 0xbb, 0xcc, 0xdd, FormatVersion}
	b := make([]byte, n)
	for i := range b {
		b[i] = period[i%len(period)]
	}
	return b
}

// naiveValidAfter is anyValidAfter as first written: every candidate frame
// checksummed on its own. It is the reference the linear scan must agree
// with.
func naiveValidAfter(buf []byte, off int64, index uint64) bool {
	for p := off; p < int64(len(buf)); p++ {
		size, n := binary.Uvarint(buf[p:])
		if n <= 0 || size < entryHeader+1 || size > uint64(int64(len(buf))-p-int64(n)) {
			continue
		}
		data := buf[p+int64(n) : p+int64(n)+int64(size)]
		if data[4] != FormatVersion || !isArrayHeader(data[5]) {
			continue
		}
		body := crc32.Checksum(data[4:], castagnoli)
		want := binary.LittleEndian.Uint32(data)
		for i := uint64(0); i < lookAhead; i++ {
			if entryCRC(body, index+i) == want {
				return true
			}
		}
	}
	return false
}

// TestTornScanLinear: the look-ahead for a valid entry after damage does
// work proportional to the bytes it scans, however the bytes are crafted,
// whether it finds nothing or finds an entry only at the very end. Work is
// counted (bytes checksummed, plus 32 per polynomial multiplication), not
// timed.
func TestTornScanLinear(t *testing.T) {
	t.Parallel()
	const size = 1 << 20
	valid, err := EncodeEntry(1000+lookAhead-1, enqueue(7, 40))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		buf  []byte
		want bool
	}{
		{"nothing-valid", craftedTorn(size), false},
		{"valid-at-end", append(craftedTorn(size), framed(valid)...), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var work int64
			if got := validAfter(tc.buf, 1, 1000, &work); got != tc.want {
				t.Fatalf("validAfter = %v, want %v", got, tc.want)
			}
			// A constant per byte: a checkpoint pass, a few dozen
			// bytes and three multiplications per candidate.
			perByte := float64(work) / float64(len(tc.buf))
			if perByte > 128 {
				t.Errorf("scanning %d crafted bytes took %d units of work (%.0f per byte), want at most 128 per byte",
					len(tc.buf), work, perByte)
			}
			t.Logf("%d bytes: %d units of work, %.1f per byte", len(tc.buf), work, perByte)
		})
	}
}

// TestValidAfterAgreesWithNaive compares the linear scan with the naive one
// on random mixes of crafted bytes, random bytes and whole frames (valid
// for an index inside or outside the look-ahead window, or damaged), from
// random start offsets.
func TestValidAfterAgreesWithNaive(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 11))
	const index = 500
	found, missed := 0, 0
	for run := range 500 {
		var buf []byte
		for range 1 + rng.IntN(6) {
			switch rng.IntN(5) {
			case 0:
				buf = append(buf, craftedTorn(1+rng.IntN(300))...)
			case 1:
				r := make([]byte, rng.IntN(200))
				for i := range r {
					r[i] = byte(rng.Uint32())
				}
				buf = append(buf, r...)
			default:
				// A frame for an index around the window.
				at := uint64(index - 3 + rng.IntN(lookAhead+6))
				e, err := EncodeEntry(at, enqueue(at, rng.IntN(100)))
				if err != nil {
					t.Fatal(err)
				}
				f := framed(e)
				if rng.IntN(3) == 0 {
					f[rng.IntN(len(f))] ^= byte(1 + rng.IntN(255))
				}
				buf = append(buf, f...)
			}
		}
		for k := range 6 {
			off := int64(0)
			if k > 0 {
				off = int64(rng.IntN(len(buf) + 1))
			}
			want := naiveValidAfter(buf, off, index)
			if want {
				found++
			} else {
				missed++
			}
			var work int64
			if got := validAfter(buf, off, index, &work); got != want {
				t.Fatalf("run %d: %d bytes from %d: validAfter = %v, naive = %v", run, len(buf), off, got, want)
			}
		}
	}
	if found < 100 || missed < 100 {
		t.Fatalf("%d cases with a valid entry, %d without: too few of one kind to prove anything", found, missed)
	}
	t.Logf("%d cases with a valid entry after the offset, %d without", found, missed)
}

// BenchmarkTornScan scans a crafted torn region of each size for a valid
// entry (there is none). size=0 is the baseline: an empty region.
func BenchmarkTornScan(b *testing.B) {
	for _, size := range []int{0, 64 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			buf := craftedTorn(size)
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				if anyValidAfter(buf, 0, 1) {
					b.Fatal("found a valid entry in crafted bytes")
				}
			}
		})
	}
}

// TestCRCShift checks the algebra validAfter relies on, for lengths on
// both sides of the crcPowLo table: crc(A||B) = shift(crc(A), len(B)) ^
// crc(B).
func TestCRCShift(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 5))
	data := make([]byte, 300_000)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	pow := newCRCPowers(len(data))
	for _, n := range []int{0, 1, 7, 8, 4095, 4096, 4097, 65_536, 123_457, 299_990} {
		a, b := data[:len(data)-n], data[len(data)-n:]
		crcA, crcB := crc32.Checksum(a, castagnoli), crc32.Checksum(b, castagnoli)
		if got, want := pow.shift(crcA, n)^crcB, crc32.Checksum(data, castagnoli); got != want {
			t.Errorf("len(B)=%d: shift(crc(A))^crc(B) = %08x, crc(A||B) = %08x", n, got, want)
		}
		if n == 8 && shift8(crcA) != pow.shift(crcA, 8) {
			t.Errorf("shift8 disagrees with shift(c, 8)")
		}
	}
	// A valid entry of more than 4 KiB after damage is found.
	e, err := EncodeEntry(42, enqueue(42, 20_000))
	if err != nil {
		t.Fatal(err)
	}
	buf := append(craftedTorn(10_000), framed(e)...)
	if !anyValidAfter(buf, 0, 40) || !naiveValidAfter(buf, 0, 40) {
		t.Error("a valid 20 KB entry after crafted bytes was not found")
	}
}
