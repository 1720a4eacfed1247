// Package recovery opens a walq directory: it opens the log (which repairs a
// torn tail), replays every record through the index's fold, voids the
// leases of the process that last had the directory open, and reports what
// it did. It owns the poison-pill rule: a lease voided at open counts as an
// attempt, and a job whose attempts are used up that way goes to the
// dead-letter queue instead of running again.
//
// recovery never reads the clock: the time of open is passed in. It is
// internal to walq and may change.
package recovery
