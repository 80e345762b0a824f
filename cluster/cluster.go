// Package cluster makes several Parley nodes one service on NATS: a
// session registry replicated through a JetStream key-value bucket (every
// node keeps a full copy, fed by a watch, so lookups stay map reads), a
// bus that carries stanzas to the node holding the recipient's session,
// heartbeats that find dead nodes, and the hand-over of resumable
// sessions between nodes. It implements router.Cluster. PostgreSQL stays
// the only durable store: what a dead node held is in the archive and the
// offline store (store before acknowledge), so the bus can be
// at-most-once. See docs/adr/0009-cluster-on-nats.md.
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/router"
)

// Config configures a node.
type Config struct {
	Node      string
	URLs      []string
	Prefix    string // subjects and bucket names
	Replicas  int
	CredsFile string
	CAFile    string
	Heartbeat time.Duration
	DeadAfter time.Duration
	Version   string
	// Advertise is the host:port clients can reach this node at; a
	// draining node sends its clients to another node's (XEP-0198
	// resumption or <see-other-host/>).
	Advertise string
	Logger    *slog.Logger
}

// Node is this server's membership in a cluster.
type Node struct {
	cfg  Config
	log  *slog.Logger
	boot string // this process's incarnation: entries of an earlier one are stale

	nc  *nats.Conn
	js  jetstream.JetStream
	kv  jetstream.KeyValue // sessions
	lkv jetstream.KeyValue // leases

	router *router.Router
	reg    *module.Registry
	c2s    Handoff

	registry
	leases   leases
	hostq    []chan hostWork
	releases chan leaseRelease
	peers    peers
	moves    moves
	pending  pendingAttach
	markers  markers
	outq     [outShards]outQueue
	// sendBarrier: proxies read the registry and publish under its read
	// lock, so a node taking it once knows that no send still goes by
	// what the registry said before.
	sendBarrier sync.RWMutex

	started  time.Time
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	subs     []*nats.Subscription
	watchOK  atomic.Bool
	leasesOK atomic.Bool
	stopping atomic.Bool
	draining atomic.Bool
	onDrain  func()
	// dbPending: whether this node's s2s waits on a dialback result.
	dbPending func(local, remote, id string) bool
	writeMu   [64]sync.Mutex // serializes the writes of one key
}

var _ router.Cluster = (*Node)(nil)

// New returns a node; Connect, then Start.
func New(cfg Config) *Node {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = time.Second
	}
	if cfg.DeadAfter <= 0 {
		cfg.DeadAfter = 10 * cfg.Heartbeat
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	n := &Node{cfg: cfg, log: cfg.Logger.With("node", cfg.Node), boot: hex.EncodeToString(b[:])}
	n.registry.init()
	n.leases.init()
	n.releases = make(chan leaseRelease, 4096)
	n.peers.init()
	n.moves.init()
	n.pending.init()
	n.markers.init()
	return n
}

// Name implements router.Cluster.
func (n *Node) Node() string { return n.cfg.Node }

func (n *Node) subject(parts ...string) string {
	s := n.cfg.Prefix
	for _, p := range parts {
		s += "." + p
	}
	return s
}

func (n *Node) bucket() string { return n.cfg.Prefix + "_sessions" }

// Dial connects to NATS (used by the node and by `parley cluster status`
// and `parley check`).
func Dial(cfg Config, name string) (*nats.Conn, error) {
	opts := []nats.Option{nats.Name(name), nats.Timeout(5 * time.Second),
		nats.MaxReconnects(-1), nats.ReconnectWait(500 * time.Millisecond),
		nats.ReconnectBufSize(8 << 20)}
	if cfg.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	}
	if cfg.CAFile != "" {
		opts = append(opts, nats.RootCAs(cfg.CAFile))
	}
	if cfg.Logger != nil {
		log := cfg.Logger
		opts = append(opts,
			nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { log.Warn("cluster: NATS disconnected", "err", err) }),
			nats.ReconnectHandler(func(c *nats.Conn) { log.Info("cluster: NATS reconnected", "url", c.ConnectedUrlRedacted()) }),
			nats.ErrorHandler(func(_ *nats.Conn, s *nats.Subscription, err error) {
				subj := ""
				if s != nil {
					subj = s.Subject
				}
				log.Warn("cluster: NATS error", "subject", subj, "err", err)
				if errors.Is(err, nats.ErrSlowConsumer) {
					busDropped.WithLabelValues("slow-consumer").Inc()
				}
			}))
	}
	url := ""
	for i, u := range cfg.URLs {
		if i > 0 {
			url += ","
		}
		url += u
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("cluster.nats.urls: cannot connect to NATS at %s: %w", url, err)
	}
	return nc, nil
}

// Connect reaches NATS and opens (creating when missing) the session
// bucket.
func (n *Node) Connect(ctx context.Context) error {
	nc, err := Dial(n.cfg, "parley "+n.cfg.Node)
	if err != nil {
		return err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return fmt.Errorf("cluster: JetStream: %w", err)
	}
	kv, err := OpenBucket(ctx, js, n.cfg)
	if err != nil {
		nc.Close()
		return err
	}
	lkv, err := openBucket(ctx, js, n.cfg, n.leaseBucket(), "Parley entity leases (chat rooms)")
	if err != nil {
		nc.Close()
		return err
	}
	n.nc, n.js, n.kv, n.lkv = nc, js, kv, lkv
	return nil
}

// OpenBucket opens the session bucket, creating it when missing.
func OpenBucket(ctx context.Context, js jetstream.JetStream, cfg Config) (jetstream.KeyValue, error) {
	return openBucket(ctx, js, cfg, cfg.Prefix+"_sessions", "Parley session registry")
}

func openBucket(ctx context.Context, js jetstream.JetStream, cfg Config, name, desc string) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, name)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: name,
			Description: desc, History: 1, Storage: jetstream.FileStorage, Replicas: cfg.Replicas})
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, name)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: JetStream key-value bucket %s (is JetStream enabled on the NATS server, -js?): %w", name, err)
	}
	return kv, nil
}

// Start joins the cluster: it loads the registry, subscribes to this
// node's subjects and starts heart-beating. r and reg are the local router
// and module registry; h hands resumable sessions over (c2s).
func (n *Node) Start(ctx context.Context, r *router.Router, reg *module.Registry, h Handoff) error {
	if n.nc == nil {
		return errors.New("cluster: Start before Connect")
	}
	n.router, n.reg, n.c2s = r, reg, h
	n.started = time.Now()
	n.ctx, n.cancel = context.WithCancel(context.Background())
	if err := n.startWatch(ctx); err != nil {
		return err
	}
	if err := n.watchBucket(ctx, n.lkv, n.onLease, &n.leasesOK); err != nil {
		return err
	}
	n.startHostWorkers()
	for _, s := range []struct {
		subj string
		h    nats.MsgHandler
	}{
		{n.subject("node", n.cfg.Node), n.onBus},
		{n.subject("rpc", n.cfg.Node), n.onRPC},
		{n.subject("hb"), n.onHeartbeat},
		{n.subject("moved"), n.onMoved},
		{n.subject("dialback"), n.onDialback},
	} {
		sub, err := n.nc.Subscribe(s.subj, s.h)
		if err != nil {
			return fmt.Errorf("cluster: subscribe %s: %w", s.subj, err)
		}
		// Generous but bounded: a stalled handler drops (counted) rather
		// than growing without end.
		_ = sub.SetPendingLimits(1<<20, 256<<20)
		n.subs = append(n.subs, sub)
	}
	if err := n.nc.FlushTimeout(5 * time.Second); err != nil {
		return fmt.Errorf("cluster: NATS: %w", err)
	}
	n.heartbeat()
	n.wg.Add(1)
	go n.liveness()
	n.log.Info("cluster: joined", "boot", n.boot, "sessions", n.registry.size())
	return nil
}

// Ready reports why the node cannot serve, nil when it can.
func (n *Node) Ready() error {
	if n.nc == nil || !n.nc.IsConnected() {
		return errors.New("NATS is not connected")
	}
	if !n.watchOK.Load() {
		return errors.New("the session registry is not loaded")
	}
	if !n.leasesOK.Load() {
		return errors.New("the lease table is not loaded")
	}
	return nil
}

// Stop leaves the cluster: sessions were closed before (their entries are
// released), so it stops heart-beating and says goodbye.
func (n *Node) Stop() {
	if n.nc == nil || !n.stopping.CompareAndSwap(false, true) {
		return
	}
	if n.cancel != nil {
		n.cancel()
	}
	n.wg.Wait()
	n.goodbye()
	for _, s := range n.subs {
		_ = s.Unsubscribe()
	}
	_ = n.nc.FlushTimeout(2 * time.Second)
	n.nc.Close()
}

// Conn is the NATS connection (tests and status).
func (n *Node) Conn() *nats.Conn { return n.nc }
