package queue

import "fmt"

// maxQueueLen bounds a queue name's length in bytes.
const maxQueueLen = 255

// checkQueueName checks a queue name as it enters through field (the
// argument or struct field named in the error). The empty name stands for
// DefaultQueue and is accepted; any other name must be 1 to 255 bytes of
// ASCII letters, digits and the characters - _ . : /, so that names print
// as they are in logs, tables and shells.
func checkQueueName(field, name string) error {
	if len(name) > maxQueueLen {
		return fmt.Errorf("%w: %s: name of %d bytes, longer than %d", ErrInvalid, field, len(name), maxQueueLen)
	}
	for i := 0; i < len(name); i++ {
		if !queueNameByte(name[i]) {
			return fmt.Errorf("%w: %s: %q has %q at byte %d; a queue name has only letters, digits and - _ . : /",
				ErrInvalid, field, name, name[i], i)
		}
	}
	return nil
}

// queueNameByte reports whether c may appear in a queue name.
func queueNameByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '-', '_', '.', ':', '/':
		return true
	}
	return false
}

// CheckQueueName returns nil if name may name a queue (see NewJob.Queue:
// empty, standing for DefaultQueue, or 1 to 255 bytes of ASCII letters,
// digits and - _ . : /), and an error matching ErrInvalid otherwise. The
// queue's calls check every name they take; CheckQueueName lets a program
// check one early, for example a name read from configuration.
func CheckQueueName(name string) error { return checkQueueName("queue name", name) }
