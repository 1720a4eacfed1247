package log

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// lockName is the lock file in a log directory; it holds the writer's pid.
const lockName = "LOCK"

// formatName is the marker file that makes a directory a walq log; it holds
// "walq <version>\n". Part of the on-disk format; never change.
const formatName = "FORMAT"

// syncDir fsyncs a directory so that entries created, removed or renamed in
// it survive a crash; a file's own fsync does not cover its name.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("walq/log: fsync directory %s: %w", dir, err)
	}
	return nil
}

// writeFileAtomic writes data to path the boring way: temp file, fsync,
// rename, fsync directory. A crash leaves either the old file or the new
// one, never a mix.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("walq/log: write %s: %w", path, err)
	}
	return syncDir(filepath.Dir(path))
}

// lockDir takes the exclusive write lock on dir, or fails with ErrLocked
// naming the holder's pid. The lock is an flock(2) on dir/LOCK, released by
// the kernel when the process dies, so a crash never leaves a stale lock.
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, lockName)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("walq/log: open lock file: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, &LockedError{Dir: dir, PID: LockHolder(dir)}
		}
		return nil, fmt.Errorf("walq/log: lock %s: %w", path, err)
	}
	// The pid is informational (for error messages); the flock is the lock.
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

// unlockDir releases the write lock taken by lockDir and closes the file.
// The explicit LOCK_UN matters: the flock belongs to the open file
// description, which a child forked by this process (os/exec) shares until
// it execs; closing only our descriptor would leave the directory locked for
// that window, and a reopen right after Close would fail with ErrLocked.
func unlockDir(f *os.File) error {
	uerr := unix.Flock(int(f.Fd()), unix.LOCK_UN)
	cerr := f.Close()
	if uerr != nil {
		return fmt.Errorf("walq/log: unlock %s: %w", f.Name(), uerr)
	}
	return cerr
}

// LockHolder returns the pid written in dir's lock file by the process that
// last took the write lock, or 0 if unknown. It does not say whether that
// process still holds the lock.
func LockHolder(dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, lockName))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// LockedError is returned by Open when another writer holds the directory.
// It matches ErrLocked with errors.Is.
type LockedError struct {
	// Dir is the locked directory.
	Dir string
	// PID is the holder's process id as written in the lock file, 0 if
	// unknown.
	PID int
}

// Error names the directory and the holder.
func (e *LockedError) Error() string {
	if e.PID > 0 {
		return fmt.Sprintf("walq/log: directory %s is locked by another writer (pid %d)", e.Dir, e.PID)
	}
	return fmt.Sprintf("walq/log: directory %s is locked by another writer", e.Dir)
}

// Is reports whether target is ErrLocked.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// checkFormat validates dir's FORMAT marker. It reports whether the marker
// exists; a directory that holds segment files but no marker, or a marker of
// a newer version, is an error.
func checkFormat(dir string) (bool, error) {
	b, err := os.ReadFile(filepath.Join(dir, formatName))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var v int
	if _, err := fmt.Sscanf(string(b), "walq %d\n", &v); err != nil {
		return true, fmt.Errorf("%w: %s: unrecognised FORMAT file", ErrNotLog, dir)
	}
	if v > FormatVersion {
		return true, corruptAt(filepath.Join(dir, formatName), -1, 0,
			fmt.Sprintf("directory format %d is newer than %d (written by a newer walq)", v, FormatVersion), ErrVersion)
	}
	return true, nil
}

// checkUsable refuses a directory that is neither a walq log nor empty. A
// lock file, and the temporary FORMAT file of a first Open that crashed
// before renaming it, count as empty: initDir writes FORMAT before anything
// else, so nothing else can have been written.
func checkUsable(dir string) error {
	ok, err := checkFormat(dir)
	if err != nil || ok {
		return err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.Name() != lockName && e.Name() != formatName+".tmp" {
			return fmt.Errorf("%w: %s holds %q but no %s file", ErrNotLog, dir, e.Name(), formatName)
		}
	}
	return nil
}

// initDir makes dir a walq log directory if it is empty, and refuses a
// directory that holds other files.
func initDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("walq/log: create %s: %w", dir, err)
	}
	if err := checkUsable(dir); err != nil {
		return err
	}
	if ok, _ := checkFormat(dir); ok {
		return nil
	}
	if err := writeFileAtomic(filepath.Join(dir, formatName), []byte(fmt.Sprintf("walq %d\n", FormatVersion))); err != nil {
		return err
	}
	// The directory itself may be new: make its name durable too.
	return syncDir(filepath.Dir(filepath.Clean(dir)))
}
