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
//	p.h.<nuid>           the record of a delayed job (its ID), never delivered
//	p.s.<token>.<nuid>   a message schedule that fires into p.q.<token>
func (q *Queue) readySubject(name string) string { return q.opts.Name + ".q." + token(name) }
func (q *Queue) holdSubject(nuid string) string  { return q.opts.Name + ".h." + nuid }
func (q *Queue) schedSubject(name, nuid string) string {
	return q.opts.Name + ".s." + token(name) + "." + nuid
}
func (q *Queue) consumerName(name string) string { return q.opts.Name + "_" + token(name) }

// jobKey and keyKey name a job's state record and an idempotency key's
// record in their buckets.
func jobKey(id uint64) string { return "j." + strconv.FormatUint(id, 10) }
