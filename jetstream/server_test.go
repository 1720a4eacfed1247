package jetstream

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// startServer starts one in-process nats-server with JetStream (file
// storage under t.TempDir()) and stops it on cleanup.
func startServer(t testing.TB) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true,
		StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(s.Shutdown)
	return s
}

// cluster is three in-process servers forming a JetStream cluster on
// 127.0.0.1.
type cluster struct {
	servers []*server.Server
	opts    []*server.Options
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startCluster(t testing.TB) *cluster {
	t.Helper()
	c := &cluster{}
	ports := []int{freePort(t), freePort(t), freePort(t)}
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	for i, p := range ports {
		o := &server.Options{ServerName: fmt.Sprintf("n%d", i), Host: "127.0.0.1", Port: -1,
			JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
			Cluster: server.ClusterOpts{Name: "walq", Host: "127.0.0.1", Port: p}}
		o.Routes = server.RoutesFromStr(fmt.Sprint(routes[0], ",", routes[1], ",", routes[2]))
		c.opts = append(c.opts, o)
		c.servers = append(c.servers, nil)
		c.start(t, i)
	}
	t.Cleanup(func() {
		for _, s := range c.servers {
			if s != nil {
				s.Shutdown()
			}
		}
	})
	c.waitLeader(t)
	return c
}

// waitLeader waits for the cluster to elect a JetStream meta leader.
func (c *cluster) waitLeader(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range c.servers {
			if s != nil && s.Running() && s.JetStreamIsLeader() {
				return
			}
		}
		time.Sleep(20 * time.Millisecond) // polling the server's election
	}
	t.Fatal("no JetStream meta leader")
}

func (c *cluster) start(t testing.TB, i int) {
	s, err := server.NewServer(c.opts[i])
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	c.servers[i] = s
}

func (c *cluster) urls() string {
	u := ""
	for _, s := range c.servers {
		if s != nil && s.Running() {
			if u != "" {
				u += ","
			}
			u += s.ClientURL()
		}
	}
	return u
}

func connect(t testing.TB, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// openR1 opens a Queue on a fresh single server.
func openR1(t testing.TB, o *Options) *Queue {
	t.Helper()
	s := startServer(t)
	q, err := Open(context.Background(), connect(t, s.ClientURL()), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}
