package e2e

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/server"
	"github.com/parley-xmpp/parley/wire"
)

// fanOutRoom is a room with n occupants, each a real client over TLS, and
// counters of which message reached how many of them.
type fanOutRoom struct {
	room    string
	clients []*testserver.Client
	n       int

	mu      sync.Mutex
	counts  map[int]int       // message index → occupants reached
	done    map[int]time.Time // message index → when the last one got it
	arrived chan int
}

func newFanOutRoom(b *testing.B, occupants int) *fanOutRoom {
	b.Helper()
	ts := testserver.Start(b, func(c *server.Config) {
		c.MUC.MessagesPerSecond = 1 << 20
		c.MUC.MaxOccupants = occupants + 10
		c.MUC.Defaults.MaxUsers = occupants + 10
		c.MUC.Defaults.HistoryLength = 0
		c.MUC.Defaults.Archive = os.Getenv("NOARCH") == ""
		c.Limits.StanzasPerSecond = 1 << 20
	})
	f := &fanOutRoom{room: roomJID("bench"), n: occupants, counts: map[int]int{}, done: map[int]time.Time{},
		arrived: make(chan int, 1<<16)}
	for i := range occupants {
		u := fmt.Sprintf("u%03d", i)
		ts.AddUser(u, "pw")
		c := ts.Login(u, "pw", "r")
		if i == 0 {
			createRoom(b, c, f.room, u, nil)
		} else {
			join(b, c, f.room, u, "<history maxstanzas='0'/>")
		}
		f.clients = append(f.clients, c)
	}
	for _, c := range f.clients {
		c.Tap(f.tap)
	}
	return f
}

// tap counts one occupant's copy of message "b<index>".
func (f *fanOutRoom) tap(st *wire.Stanza) bool {
	if st.Name != "message" || st.Type != "groupchat" || !strings.HasPrefix(st.ID, "b") {
		return false
	}
	i, err := strconv.Atoi(st.ID[1:])
	if err != nil {
		return false
	}
	now := time.Now()
	f.mu.Lock()
	f.counts[i]++
	last := f.counts[i] == f.n
	if last {
		f.done[i] = now
	}
	f.mu.Unlock()
	if last {
		f.arrived <- i
	}
	return true
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// BenchmarkMUCFanOut measures a room of 100 occupants, each a client on
// its own TLS connection on loopback, one of which sends. A message
// counts as delivered when the last of the 100 copies (the sender's own
// reflection included) has been read by its client.
//
// latency: one message in flight at a time; p50/p99 of send → last copy.
// throughput: up to 64 messages in flight; msgs/s and deliveries/s (x100)
// over the run, and p99 of send → last copy under that load.
//
//	go test ./test/e2e -run XXX -bench MUCFanOut -benchtime 1000x
func BenchmarkMUCFanOut(b *testing.B) {
	const occupants = 100
	f := newFanOutRoom(b, occupants)
	sender := f.clients[0]
	next := 0
	send := func() (int, time.Time) {
		i := next
		next++
		t0 := time.Now()
		sender.Send("<message to='%s' type='groupchat' id='b%d'><body>fan-out %d</body></message>", f.room, i, i)
		return i, t0
	}
	wait := func(what string) int {
		select {
		case i := <-f.arrived:
			return i
		case <-time.After(30 * time.Second):
			b.Fatalf("%s: a message did not reach all %d occupants within 30s", what, occupants)
			return -1
		}
	}
	b.Run("latency", func(b *testing.B) {
		var lat []time.Duration
		for b.Loop() {
			i, t0 := send()
			if got := wait("latency"); got != i {
				b.Fatalf("message %d completed while waiting for %d", got, i)
			}
			f.mu.Lock()
			lat = append(lat, f.done[i].Sub(t0))
			f.mu.Unlock()
		}
		b.ReportMetric(float64(percentile(lat, 0.50).Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "p99-ms")
	})
	b.Run("throughput", func(b *testing.B) {
		const window = 64
		sent := map[int]time.Time{}
		var lat []time.Duration
		inFlight, total := 0, b.N
		cpu0 := cpuTime()
		start := time.Now()
		for done := 0; done < total; {
			for inFlight < window && len(sent)+done < total {
				i, t0 := send()
				sent[i] = t0
				inFlight++
			}
			i := wait("throughput")
			f.mu.Lock()
			lat = append(lat, f.done[i].Sub(sent[i]))
			f.mu.Unlock()
			delete(sent, i)
			inFlight--
			done++
		}
		el := time.Since(start)
		// CPU of the whole process (server and the 100 clients) per
		// message: meaningful on a shared machine where wall time is not.
		b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(total)/1000, "cpu-ms/msg")
		b.ReportMetric(float64(total)/el.Seconds(), "msgs/s")
		b.ReportMetric(float64(total*occupants)/el.Seconds(), "deliveries/s")
		b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "p99-ms")
		b.ReportMetric(0, "ns/op")
	})
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
