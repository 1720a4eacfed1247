package queue

// maxGroupLen bounds NewJob.Group.
const maxGroupLen = 255

// releaseGroups ends the hold addJobs took on ordered groups: their next
// job may be leased again. The caller holds q.mu.
func (q *Queue) releaseGroups(groups []string) {
	if len(groups) == 0 {
		return
	}
	for _, g := range groups {
		q.idx.UnreserveGroup(g)
	}
	q.wakeLeasers()
}
