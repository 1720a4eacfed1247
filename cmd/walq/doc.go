// Command walq inspects, operates and demonstrates walq queue directories.
//
// Usage:
//
//	walq <command> [flags] DIR
//
// Read commands (stats, jobs, show, dead, log, check) open the directory
// read-only: they take no lock and write nothing, so they work while an
// application holds the queue open. Changing commands (enqueue, cancel,
// requeue, purge, compact, salvage) take the directory's write lock and
// fail, naming the holder's pid, while an application has it open.
//
// Exit codes: 0 success, 1 runtime error (including corruption found by
// check), 2 usage error, 130 interrupted. Run "walq help" for the commands
// and "walq <command> --help" for each one's flags and an example;
// README.md in this directory documents the JSON output.
//
// walq owns presentation only: every change goes through package queue,
// every raw read through package log. It never writes to a directory it
// opened for reading.
package main
