//go:build linux

package log

import (
	"os"

	"golang.org/x/sys/unix"
)

// datasync makes f's data durable with fdatasync(2): like fsync, but it
// skips metadata a reader does not need (the modification time). The file
// size, which an append changes, is still flushed, so an appended entry is
// as durable as with fsync. It retries on EINTR, as os.File.Sync does.
func datasync(f *os.File) error {
	for {
		err := unix.Fdatasync(int(f.Fd()))
		if err != unix.EINTR {
			if err != nil {
				return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
			}
			return nil
		}
	}
}
