package index

// pageBits sets the size of a jobTable page: 1024 job slots.
const pageBits = 10

// jobPage holds the jobs of 1<<pageBits consecutive IDs.
type jobPage [1 << pageBits]*Job

// jobTable maps job IDs to jobs. IDs are handed out in increasing order, so
// a table of pages indexed by ID is denser and faster than a hash map: a
// pointer per ID within the live range, pages freed when they empty, and the
// range moving forward as old jobs are purged.
type jobTable struct {
	base  uint64 // page number of pages[0]
	pages []*jobPage
	count []uint16 // live jobs per page
	n     int
}

func (t *jobTable) len() int { return t.n }

// trim gives back the spare capacity of the page list.
func (t *jobTable) trim() {
	t.pages = clip(t.pages)
	t.count = clip(t.count)
}

func (t *jobTable) get(id uint64) *Job {
	p := id >> pageBits
	if p < t.base || p-t.base >= uint64(len(t.pages)) {
		return nil
	}
	pg := t.pages[p-t.base]
	if pg == nil {
		return nil
	}
	return pg[id&(1<<pageBits-1)]
}

func (t *jobTable) set(j *Job) {
	p := j.ID >> pageBits
	if len(t.pages) == 0 {
		t.base = p
	}
	if p < t.base { // an ID below the range (a carry of an old job)
		grow := t.base - p
		t.pages = append(make([]*jobPage, grow), t.pages...)
		t.count = append(make([]uint16, grow), t.count...)
		t.base = p
	}
	for p-t.base >= uint64(len(t.pages)) {
		t.pages = append(t.pages, nil)
		t.count = append(t.count, 0)
	}
	i := p - t.base
	if t.pages[i] == nil {
		t.pages[i] = new(jobPage)
	}
	slot := &t.pages[i][j.ID&(1<<pageBits-1)]
	if *slot == nil {
		t.count[i]++
		t.n++
	}
	*slot = j
}

func (t *jobTable) delete(id uint64) {
	p := id >> pageBits
	if p < t.base || p-t.base >= uint64(len(t.pages)) {
		return
	}
	i := p - t.base
	pg := t.pages[i]
	if pg == nil || pg[id&(1<<pageBits-1)] == nil {
		return
	}
	pg[id&(1<<pageBits-1)] = nil
	t.count[i]--
	t.n--
	if t.count[i] == 0 {
		t.pages[i] = nil
	}
	// Move the range forward past empty leading pages.
	k := 0
	for k < len(t.pages) && t.pages[k] == nil {
		k++
	}
	if k > 0 {
		t.pages = append(t.pages[:0], t.pages[k:]...)
		t.count = append(t.count[:0], t.count[k:]...)
		t.base += uint64(k)
	}
}

// each calls fn with every job in ID order until fn returns false.
func (t *jobTable) each(fn func(*Job) bool) { t.eachFrom(0, fn) }

// eachFrom calls fn with every job whose ID is at least id, in ID order,
// until fn returns false. It skips the pages before id's, so it costs what
// it visits: the slots from id to the last job fn sees.
func (t *jobTable) eachFrom(id uint64, fn func(*Job) bool) {
	first, slot := 0, 0
	if p := id >> pageBits; p >= t.base {
		if p-t.base >= uint64(len(t.pages)) {
			return
		}
		first, slot = int(p-t.base), int(id&(1<<pageBits-1))
	}
	for i := first; i < len(t.pages); i++ {
		pg := t.pages[i]
		if pg == nil {
			continue
		}
		from := 0
		if i == first {
			from = slot
		}
		for _, j := range pg[from:] {
			if j != nil && !fn(j) {
				return
			}
		}
	}
}
