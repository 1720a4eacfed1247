package jetstream

import (
	"strconv"
	"strings"
)

// token encodes a queue name (letters, digits, - _ . : /) as one subject
// token that is also a valid consumer name and key-value key: letters,
// digits and - stay, every other byte becomes _XX (hex).
func token(queueName string) string {
	var b strings.Builder
	for i := 0; i < len(queueName); i++ {
		c := queueName[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-':
			b.WriteByte(c)
		default:
			b.WriteString("_")
			b.WriteString(strconv.FormatUint(uint64(c)>>4, 16))
			b.WriteString(strconv.FormatUint(uint64(c)&15, 16))
		}
	}
	return b.String()
}

// The subjects of a Queue's stream, for prefix p:
//
//	p.q.<token>          ready messages of a named queue, read by its consumer
//	p.q.<token>.p<N>     the same at priority N (n<N> for -N), another consumer
//	p.h.<nuid>           the record of a delayed job (its ID), never delivered
//	p.s.<token>.<nuid>   a message schedule that fires into p.q.<token>
func (q *Queue) readySubject(name string, prio int32) string {
	return q.opts.Name + ".q." + token(name) + prioSuffix(prio, ".")
}
func (q *Queue) holdSubject(nuid string) string { return q.opts.Name + ".h." + nuid }
func (q *Queue) schedSubject(name, nuid string) string {
	return q.opts.Name + ".s." + token(name) + "." + nuid
}
func (q *Queue) consumerName(name string, prio int32) string {
	return q.opts.Name + "_" + token(name) + prioSuffix(prio, "_")
}

// prioSuffix names a priority other than 0 in subjects and consumer
// names: each priority of a queue has a subject and a consumer of its own
// (p.q.<token>.p5, p.q.<token>.n3 for -3).
func prioSuffix(prio int32, sep string) string {
	switch {
	case prio > 0:
		return sep + "p" + strconv.Itoa(int(prio))
	case prio < 0:
		return sep + "n" + strconv.Itoa(-int(prio))
	}
	return ""
}

// parsePrio reads a priority suffix token (p5, n3).
func parsePrio(tok string) (int32, bool) {
	if len(tok) < 2 || (tok[0] != 'p' && tok[0] != 'n') {
		return 0, false
	}
	n, err := strconv.ParseInt(tok[1:], 10, 32)
	if err != nil {
		return 0, false
	}
	if tok[0] == 'n' {
		n = -n
	}
	return int32(n), true
}

// jobKey and keyKey name a job's state record and an idempotency key's
// record in their buckets.
func jobKey(id uint64) string { return "j." + strconv.FormatUint(id, 10) }
