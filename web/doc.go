// Package web serves a dashboard and a JSON API for a walq queue: an app
// mounts Handler on its own mux to see its queues move, find a failing job,
// read its error and payload, and (when it enables writes) requeue, cancel,
// purge, pause, resume and compact; ServeAdmin serves the same API on a Unix
// socket inside the queue directory so that the walq command's change
// commands work while the app holds the directory; Follow serves a
// directory another process writes, read-only, for "walq web".
//
// The pages are rendered on the server with html/template from templates
// and assets embedded in the binary: no CDN, no build step, a little
// vanilla JavaScript for live updates. Every page has a JSON twin under
// api/, in the shapes of "walq … --json".
//
// Safe by default: the handler is read-only unless Options.Write is set;
// every change is a POST, checked against cross-origin requests
// (net/http.CrossOriginProtection) and, for the HTML forms, a per-handler
// token; a GET never changes anything. The handler has no authentication
// of its own: mount it behind the app's (see Handler).
//
// web sits on top of queue and may change; it performs no change that the
// queue's API does not, one API call per action.
package web
