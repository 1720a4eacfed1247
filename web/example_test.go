package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/walq/walq/queue"
	"github.com/walq/walq/web"
)

// Mount the dashboard on the app's own mux, read-only, under /walq/.
func ExampleHandler() {
	dir, err := os.MkdirTemp("", "walq-web")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	q, err := queue.Open(dir, nil)
	if err != nil {
		panic(err)
	}
	defer q.Close()
	if _, err := q.Enqueue(context.Background(), queue.NewJob{Queue: "email", Payload: []byte("hi")}); err != nil {
		panic(err)
	}

	mux := http.NewServeMux()
	// Read-only unless Write is set; put it behind the app's own
	// authentication, e.g. mux.Handle("/walq/", requireAdmin(dash)).
	dash := web.Handler(q, &web.Options{Prefix: "/walq"})
	mux.Handle("/walq/", dash)

	// A script reads the same data as JSON: GET /walq/api/stats.
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/walq/api/stats", nil))
	fmt.Println(rec.Code, rec.Header().Get("Content-Type"))
	// Output:
	// 200 application/json; charset=utf-8
}

// Serve the admin socket so that "walq requeue/cancel/purge/enqueue/
// compact/pause/resume DIR …" work while the app holds the directory.
func ExampleServeAdmin() {
	dir, err := os.MkdirTemp("", "walq-admin")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	q, err := queue.Open(dir, nil)
	if err != nil {
		panic(err)
	}
	defer q.Close()

	admin, err := web.ServeAdmin(q) // DIR/admin.sock, mode 0600
	if err != nil {
		panic(err)
	}
	defer admin.Close() // before q.Close: deferred calls run last first

	fmt.Println(filepath.Base(admin.Path()))
	// Output:
	// admin.sock
}
