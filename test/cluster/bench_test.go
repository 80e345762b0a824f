package cluster

import (
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/wire"
)

// BenchmarkOneToOne compares a chat message between two clients on the
// same node with one between clients on two nodes, in one cluster and one
// run (PostgreSQL archive on both): "latency" sends one message at a time
// (p50/p99 reported), "throughput" keeps `window` messages in flight per
// pair over `pairs` pairs (msgs/s reported).
func BenchmarkOneToOne(b *testing.B) {
	nodes := testserver.StartCluster(b, 2)
	n1, n2 := nodes[0], nodes[1]
	const pairs, window = 4, 32
	for i := range pairs {
		n1.AddUser("a"+strconv.Itoa(i), "pw")
		n1.AddUser("b"+strconv.Itoa(i), "pw")
	}
	for _, mode := range []struct {
		name string
		recv *testserver.Server
	}{{"same-node", n1}, {"cross-node", n2}} {
		var as, bs []*testserver.Client
		for i := range pairs {
			as = append(as, n1.Login("a"+strconv.Itoa(i), "pw", mode.name))
			r := mode.recv.Login("b"+strconv.Itoa(i), "pw", mode.name)
			r.Send("<presence/>")
			bs = append(bs, r)
		}
		b.Run(mode.name+"/latency", func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			for i := 0; i < b.N; i++ {
				id := mode.name + strconv.Itoa(i)
				start := time.Now()
				as[0].Send("<message to='%s' type='chat' id='%s'><body>x</body></message>", bs[0].JID, id)
				bs[0].Expect("message", func(s *wire.Stanza) bool { return s.Name == "message" && s.ID == id })
				lat = append(lat, time.Since(start))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
		b.Run(mode.name+"/throughput", func(b *testing.B) {
			per := max(b.N/pairs, window)
			start := time.Now()
			var wg sync.WaitGroup
			for p := range pairs {
				wg.Add(2)
				sem := make(chan struct{}, window)
				go func() {
					defer wg.Done()
					for i := range per {
						sem <- struct{}{}
						as[p].Send("<message to='%s' type='chat' id='t%d'><body>x</body></message>", bs[p].JID, i)
					}
				}()
				go func() {
					defer wg.Done()
					for i := range per {
						id := "t" + strconv.Itoa(i)
						bs[p].Expect("message", func(s *wire.Stanza) bool { return s.Name == "message" && s.ID == id })
						<-sem
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(per*pairs)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}
