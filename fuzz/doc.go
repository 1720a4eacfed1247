// Package fuzz holds walq's native Go fuzz targets and their checked-in
// seed corpora (testdata/fuzz/<target>/); it has no code of its own. It sits
// on top of the other packages and is never imported.
//
//   - FuzzDecodeEntry: any bytes at any log index decode to records that
//     re-encode to the same records, or fail with an error matching
//     log.ErrCorrupt; never a panic, never an allocation out of proportion
//     to the input.
//   - FuzzOpenDir: a queue directory whose one or two segment files hold
//     arbitrary bytes opens (read-only and writable) to a consistent queue
//     that works on and reopens to the same jobs, or fails with a typed
//     error (log.ErrCorrupt, index.ErrInconsistent); never a panic.
//   - FuzzCheckpoint: any bytes read as an index checkpoint give an index
//     that passes index.Check and re-encodes to the same state, or an
//     error matching index.ErrCheckpoint; never a panic, never an
//     allocation the input's size does not allow.
//   - FuzzAPISequence: bytes decoded into a sequence of queue calls
//     (enqueue, lease, complete, fail, extend, release, clock moves,
//     requeue, cancel, purge, compact, reopen, crash) keep walq's promises:
//     no job completes twice, a stale token changes nothing, every
//     acknowledged job survives reopens and crashes, nothing unacknowledged
//     appears, and no key is held by two jobs.
//
// go test ./fuzz runs the seed corpora. Fuzz one target with
//
//	go test ./fuzz -run '^$' -fuzz '^FuzzDecodeEntry$' -fuzztime 10m
//
// (likewise FuzzOpenDir, FuzzCheckpoint and FuzzAPISequence). With Go 1.26 a run bounded
// by time can end in a spurious "context deadline exceeded" failure with no
// input written (golang/go#75804, fixed in Go 1.27); a count, such as
// -fuzztime 5000000x, cannot, and is what CI uses. A failing input is saved
// under testdata/fuzz/<target>/ and replayed by every later go test ./fuzz;
// check it in with the fix. WALQ_WRITE_SEEDS=1 go test ./fuzz -run
// TestWriteSeeds regenerates the generated seeds.
package fuzz
