package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// CheckResult is what `parley check` reports about NATS.
type CheckResult struct {
	Server    string // connected server URL (credentials removed)
	Version   string // NATS server version
	JetStream error  // nil when JetStream is available to this account
	Bucket    string // the session bucket, "" when it does not exist yet
}

// Check connects to NATS and reports whether JetStream is available. An
// error means NATS itself is unreachable.
func Check(ctx context.Context, cfg Config) (*CheckResult, error) {
	nc, err := Dial(cfg, "parley check")
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	res := &CheckResult{Server: nc.ConnectedUrlRedacted(), Version: nc.ConnectedServerVersion()}
	js, err := jetstream.New(nc)
	if err != nil {
		res.JetStream = err
		return res, nil
	}
	if _, err := js.AccountInfo(ctx); err != nil {
		res.JetStream = err
		return res, nil
	}
	if _, err := js.KeyValue(ctx, cfg.Prefix+"_sessions"); err == nil {
		res.Bucket = cfg.Prefix + "_sessions"
	} else if !errors.Is(err, jetstream.ErrBucketNotFound) {
		res.JetStream = err
	}
	return res, nil
}

// NodeStatus is one node in `parley cluster status`.
type NodeStatus struct {
	Node     string
	Alive    bool      // heard within three heartbeats
	Sessions int       // entries in the registry naming it
	Rooms    int       // entities (chat rooms) whose lease names it
	Draining bool      // it is leaving the cluster (rolling upgrade)
	Reported int       // sessions it reports itself (-1: not heard)
	Started  time.Time // zero: not heard
	Version  string
	LastSeen time.Time
}

// Status lists the nodes of the cluster: those heart-beating during listen
// (give it a few heartbeats) and those the registry names.
func Status(ctx context.Context, cfg Config, listen time.Duration) ([]NodeStatus, error) {
	nc, err := Dial(cfg, "parley cluster status")
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	nodes := map[string]*NodeStatus{}
	get := func(name string) *NodeStatus {
		if n := nodes[name]; n != nil {
			return n
		}
		n := &NodeStatus{Node: name, Reported: -1}
		nodes[name] = n
		return n
	}
	hbs := make(chan *nats.Msg, 1024)
	sub, err := nc.ChanSubscribe(cfg.Prefix+".hb", hbs)
	if err != nil {
		return nil, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	kv, err := js.KeyValue(ctx, cfg.Prefix+"_sessions")
	if err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("cluster: session registry: %w", err)
	}
	if kv != nil {
		w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
		if err != nil {
			return nil, fmt.Errorf("cluster: session registry: %w", err)
		}
		for e := range w.Updates() {
			if e == nil {
				break
			}
			var v entry
			if strings.HasPrefix(e.Key(), "s.") && json.Unmarshal(e.Value(), &v) == nil {
				get(v.Node).Sessions++
			}
		}
		_ = w.Stop()
	}
	lkv, err := js.KeyValue(ctx, cfg.Prefix+"_leases")
	if err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("cluster: leases: %w", err)
	}
	if lkv != nil {
		w, err := lkv.WatchAll(ctx, jetstream.IgnoreDeletes())
		if err != nil {
			return nil, fmt.Errorf("cluster: leases: %w", err)
		}
		for e := range w.Updates() {
			if e == nil {
				break
			}
			var v leaseValue
			if json.Unmarshal(e.Value(), &v) == nil && v.Node != "" {
				get(v.Node).Rooms++
			}
		}
		_ = w.Stop()
	}
	timer := time.NewTimer(listen)
	defer timer.Stop()
loop:
	for {
		select {
		case m := <-hbs:
			var hb heartbeat
			if json.Unmarshal(m.Data, &hb) != nil || hb.Node == "" {
				continue
			}
			n := get(hb.Node)
			if hb.Bye {
				n.Alive = false
				continue
			}
			n.Alive, n.Reported, n.Started, n.Version, n.LastSeen = true, hb.Sessions, time.Unix(hb.Started, 0), hb.Version, time.Now()
			n.Draining = hb.Draining
		case <-timer.C:
			break loop
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	out := make([]NodeStatus, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, *n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out, nil
}

// DeleteBuckets removes the JetStream buckets of cfg.Prefix (the session
// registry and the leases): tests and benchmarks clean up with it.
func DeleteBuckets(ctx context.Context, cfg Config) error {
	nc, err := Dial(cfg, "parley cleanup")
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	for _, b := range []string{"_sessions", "_leases"} {
		if err := js.DeleteKeyValue(ctx, cfg.Prefix+b); err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) {
			return err
		}
	}
	return nil
}
