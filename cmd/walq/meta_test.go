package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/walq/walq/queue"
)

// TestShowMeta: show prints a job's metadata, sorted, in its table and in
// --json; log --json shows it in the enqueued record.
func TestShowMeta(t *testing.T) {
	t.Parallel()
	mc := newMock()
	dir := t.TempDir()
	q := openQueue(t, dir, mc, nil)
	meta := map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "tenant": "acme"}
	e, err := q.Enqueue(context.Background(), queue.NewJob{Queue: "email", Payload: []byte("hi"), Meta: meta})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	r := walqAt(t, mc, "show", dir, fmt.Sprint(e.ID))
	wantCode(t, r, 0)
	tenant, trace := strings.Index(r.stdout, "meta tenant"), strings.Index(r.stdout, "meta traceparent")
	if tenant < 0 || trace < tenant || !strings.Contains(r.stdout, meta["traceparent"]) {
		t.Fatalf("show printed no sorted meta rows:\n%s", r.stdout)
	}
	r = walqAt(t, mc, "show", dir, fmt.Sprint(e.ID), "--json")
	wantCode(t, r, 0)
	var got struct {
		Meta    map[string]string `json:"meta"`
		Records []struct {
			Meta map[string]string `json:"meta"`
		} `json:"records"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(got.Meta, meta) || len(got.Records) != 1 || !maps.Equal(got.Records[0].Meta, meta) {
		t.Fatalf("show --json: %+v, want meta %v on the job and its record", got, meta)
	}
}
