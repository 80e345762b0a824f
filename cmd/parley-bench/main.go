// Command parley-bench puts an XMPP server under load over loopback and
// prints what it measured as JSON lines (one object per step or round, and
// a summary per server binary).
//
// Scenarios:
//
//	login       a storm of complete SCRAM-SHA-256 logins (connect, TLS as
//	            -sec says, authenticate, bind, close), -concurrency at a time
//	idle        -conns logged-in connections held open; the server's RSS
//	            (from /proc/PID/status), Go heap, stacks and goroutines per
//	            connection
//	throughput  -pairs sender/receiver pairs, 1:1 chat to the receiver's
//	            bare JID, open loop at the aggregate -rates in steps of
//	            -step; latency from the due time carried in each body;
//	            lost, late and out-of-order counts; server and tool CPU.
//	            "sustainable" = nothing lost, in order and p99 < -max-p99
//	mam         a device catching up on -messages archived messages, paging
//	            with RSM <after/>
//	muc         group chat fan-out: -rooms rooms of -occupants clients,
//	            -muc-senders of them talking at the aggregate -rates; every
//	            copy's latency, loss and order are measured (one message
//	            reaches every occupant, the sender's reflection included)
//
// By default it builds ./cmd/parley and spawns it for each scenario run
// with a fresh data directory (or PostgreSQL schema), loopback listeners
// and the accounts it needs; -parley names binaries instead, several as
// label=path,… to compare them in alternating -rounds on the same machine
// (ratios from one sitting are what survives a noisy machine). -addr points
// it at a running server instead (accounts <user-prefix>0…N with
// -password must exist; -pid lets it read the server's CPU and memory).
//
//	go run ./cmd/parley-bench throughput -pairs 100 -rates 5000,10000,20000,40000
//	go run ./cmd/parley-bench throughput -archive=false -rates 10000,20000,40000,60000
//	go run ./cmd/parley-bench idle -conns 10000 -sec starttls
//	go run ./cmd/parley-bench login -logins 5000 -sec tls
//	go run ./cmd/parley-bench mam -messages 10000
//	go run ./cmd/parley-bench -parley old=/tmp/parley-old,new=/tmp/parley-new -rounds 3 throughput
//
// Everything is bounded: by counts, by -step × rates, and by -timeout for
// the whole run.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	scenario string
	// target
	binaries   []binary
	addr       string
	tlsAddr    string
	admin      string
	domain     string
	pid        int
	prefix     string
	password   string
	store      string
	archive    bool
	sets       []string
	pprof      bool
	cpuProfile string
	keep       bool
	rounds     int
	timeout    time.Duration
	federated  bool
	cluster    bool
	// clients
	sec        string
	scramCache bool
	sm         bool
	// scenarios
	tp    throughputConfig
	login loginConfig
	idle  idleConfig
	mam   mamConfig
	muc   mucConfig
}

type binary struct{ label, path string }

type setFlag struct{ v *[]string }

func (s setFlag) String() string { return "" }
func (s setFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("expected key.path=value, got %q", v)
	}
	env := "PARLEY_" + strings.ToUpper(strings.NewReplacer(".", "_").Replace(k))
	*s.v = append(*s.v, env+"="+val)
	return nil
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "parley-bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	if o.cpuProfile != "" {
		// The tool's own CPU: it shares the machine with the server.
		f, err := os.Create(o.cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "parley-bench:", err)
			os.Exit(2)
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "parley-bench:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("parley-bench", flag.ContinueOnError)
	parley := fs.String("parley", "", "server binaries to spawn: PATH or label=PATH,label=PATH (default: build ./cmd/parley)")
	fs.StringVar(&o.addr, "addr", "", "use a running server: its c2s (STARTTLS) address instead of spawning one")
	fs.StringVar(&o.tlsAddr, "tls-addr", "", "with -addr: its direct TLS address")
	fs.StringVar(&o.admin, "admin", "", "with -addr: its admin listener (metrics)")
	fs.StringVar(&o.domain, "domain", "localhost", "with -addr: the domain the accounts are on")
	fs.IntVar(&o.pid, "pid", 0, "with -addr: the server's process id (CPU and memory); 0: not measured")
	fs.StringVar(&o.prefix, "user-prefix", "bench", "with -addr: accounts are <prefix>0, <prefix>1, …")
	fs.StringVar(&o.password, "password", "bench-password", "with -addr: the accounts' password")
	fs.StringVar(&o.store, "store", "sqlite", "spawned server's store: sqlite or postgres (PARLEY_TEST_POSTGRES or the local server, a schema of its own)")
	fs.BoolVar(&o.archive, "archive", true, "archive messages (mam.default_policy always; false: never)")
	fs.Var(setFlag{&o.sets}, "set", "spawned server config key=value, e.g. -set storage.group_commit=false (repeatable)")
	fs.BoolVar(&o.pprof, "pprof", false, "spawned server serves /debug/pprof on its admin listener (printed on stderr)")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write the tool's own CPU profile to this file")
	fs.BoolVar(&o.keep, "keep", false, "keep the spawned server's data directory (its log is server.log)")
	fs.IntVar(&o.rounds, "rounds", 1, "run the scenario this many times per binary, alternating binaries")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Minute, "bound on the whole run")
	fs.StringVar(&o.sec, "sec", secPlain, "client transport: plain, starttls or tls (direct TLS)")
	fs.BoolVar(&o.scramCache, "scram-cache", true, "clients keep the SCRAM salted password per account, as real clients do")
	fs.BoolVar(&o.sm, "sm", true, "clients enable stream management (XEP-0198, no resumption)")

	rates := fs.String("rates", "2000,5000,10000,20000,40000", "throughput: aggregate messages/s per step")
	fs.IntVar(&o.tp.pairs, "pairs", 100, "throughput: sender/receiver pairs")
	fs.DurationVar(&o.tp.step, "step", 10*time.Second, "throughput: sending time per rate")
	fs.DurationVar(&o.tp.drain, "drain", 5*time.Second, "throughput: longest wait for messages in flight after a step")
	fs.DurationVar(&o.tp.late, "late", time.Second, "throughput: a message slower than this counts as late")
	fs.DurationVar(&o.tp.maxP99, "max-p99", 100*time.Millisecond, "throughput: sustainable means nothing lost and p99 below this")
	fs.IntVar(&o.tp.bodyBytes, "body-bytes", 0, "throughput: padding added to each message body")
	fs.BoolVar(&o.tp.keepGoing, "all-steps", false, "throughput: run every rate even after one was not sustainable")
	fs.BoolVar(&o.federated, "federated", false, "throughput: two servers (a.test on 127.0.0.2, b.test on 127.0.0.3) federating, half the pairs talking each way")
	fs.BoolVar(&o.cluster, "cluster", false, "throughput: compare one server with two nodes of a cluster (PostgreSQL, NATS at PARLEY_TEST_NATS or 127.0.0.1:4222): every pair sends from node n1 to node n2; rounds alternate single-node and cross-node")
	fs.BoolVar(&o.tp.originID, "origin-id", true, "throughput: messages carry an XEP-0359 origin-id, as Conversations, Dino and Gajim send")

	fs.IntVar(&o.login.logins, "logins", 2000, "login: logins in total")
	fs.IntVar(&o.login.concurrency, "concurrency", 32, "login, idle: connections being set up at a time")
	fs.IntVar(&o.login.users, "users", 100, "login: accounts the logins cycle through")

	fs.IntVar(&o.idle.conns, "conns", 1000, "idle: connections held")
	fs.DurationVar(&o.idle.settle, "settle", 3*time.Second, "idle: wait before reading memory")
	fs.BoolVar(&o.idle.presence, "presence", true, "idle: connections send initial presence")

	fs.IntVar(&o.muc.rooms, "rooms", 1, "muc: rooms")
	fs.IntVar(&o.muc.occupants, "occupants", 100, "muc: occupants per room")
	fs.IntVar(&o.muc.senders, "muc-senders", 1, "muc: occupants of each room that send")
	fs.StringVar(&o.muc.service, "muc-service", "", "muc: the group chat service (default conference.<domain>)")
	fs.IntVar(&o.mam.messages, "messages", 10000, "mam: messages in the archive")
	fs.IntVar(&o.mam.page, "page", 250, "mam: page size (RSM max)")
	fs.IntVar(&o.mam.repeat, "repeat", 3, "mam: catch-ups per server")

	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: parley-bench [flags] login|idle|throughput|mam|muc [flags]")
		fs.PrintDefaults()
	}
	// The scenario may come first or after the flags.
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		o.scenario, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if o.scenario == "" && fs.NArg() > 0 {
		o.scenario = fs.Arg(0)
		if err := fs.Parse(fs.Args()[1:]); err != nil {
			return nil, err
		}
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	switch o.scenario {
	case "login", "idle", "throughput", "mam", "muc":
	case "":
		fs.Usage()
		return nil, errors.New("no scenario given")
	default:
		return nil, fmt.Errorf("unknown scenario %q (login, idle, throughput, mam, muc)", o.scenario)
	}
	switch o.sec {
	case secPlain, secStartTLS, secTLS:
	default:
		return nil, fmt.Errorf("-sec: %q is not plain, starttls or tls", o.sec)
	}
	for _, r := range strings.Split(*rates, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(r))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("-rates: %q is not a positive number", r)
		}
		o.tp.rates = append(o.tp.rates, n)
	}
	if *parley != "" {
		for _, p := range strings.Split(*parley, ",") {
			label, path, ok := strings.Cut(p, "=")
			if !ok {
				label, path = "", p
			}
			o.binaries = append(o.binaries, binary{label: label, path: path})
		}
	}
	if o.addr != "" && len(o.binaries) > 0 {
		return nil, errors.New("-addr and -parley exclude each other")
	}
	if o.rounds < 1 || o.tp.pairs < 1 || o.login.logins < 1 || o.login.concurrency < 1 || o.idle.conns < 1 ||
		o.mam.messages < 1 || o.mam.page < 1 || o.mam.repeat < 1 {
		return nil, errors.New("-rounds, -pairs, -logins, -concurrency, -conns, -messages, -page and -repeat must be positive")
	}
	o.tp.sm, o.tp.sec = o.sm, o.sec
	o.login.sec, o.login.scramCache = o.sec, o.scramCache
	o.idle.sm, o.idle.sec, o.idle.concurrency = o.sm, o.sec, o.login.concurrency
	o.mam.sec = o.sec
	o.muc.throughputConfig = o.tp
	if o.muc.service == "" {
		o.muc.service = "conference." + o.domain
	}
	if o.federated && (o.scenario != "throughput" || o.addr != "") {
		return nil, errors.New("-federated is for the throughput scenario with spawned servers")
	}
	if o.cluster {
		if o.scenario != "throughput" || o.addr != "" || o.federated || len(o.binaries) > 1 {
			return nil, errors.New("-cluster is for the throughput scenario with one spawned binary, without -federated")
		}
		o.store = "postgres"
	}
	if o.scenario == "muc" && o.addr == "" {
		// The spawned server lets a room and its talkers go as fast as
		// the scenario asks.
		n := strconv.Itoa(o.muc.occupants + 10)
		o.sets = append(o.sets, "PARLEY_MUC_MESSAGES_PER_SECOND=1000000", "PARLEY_MUC_MAX_OCCUPANTS="+n,
			"PARLEY_MUC_DEFAULTS_MAX_USERS="+n, "PARLEY_MUC_DEFAULTS_HISTORY_LENGTH=0",
			"PARLEY_MUC_DEFAULTS_ARCHIVE="+strconv.FormatBool(o.archive))
	}
	return o, nil
}

// accountsNeeded is how many accounts a scenario logs in as.
func (o *options) accountsNeeded() int {
	switch o.scenario {
	case "login":
		return max(1, o.login.users)
	case "idle":
		return o.idle.conns
	case "throughput":
		return 2 * o.tp.pairs
	case "muc":
		return o.muc.rooms * o.muc.occupants
	default:
		return 2
	}
}

func run(ctx context.Context, o *options) error {
	out := &emitter{w: os.Stdout}
	if o.addr != "" {
		archive := "unknown"
		if !o.archive {
			archive = "off"
		}
		tg := &target{c2s: o.addr, c2sTLS: o.tlsAddr, admin: o.admin, domain: o.domain, userPrefix: o.prefix,
			password: o.password, pid: o.pid, archive: archive}
		_, err := runScenario(ctx, o, tg, out)
		return err
	}
	ownBuild := len(o.binaries) == 0
	if ownBuild {
		path, cleanup, err := buildParley(ctx)
		if err != nil {
			return err
		}
		defer cleanup()
		o.binaries = []binary{{path: path}}
	}
	// Alternate binaries (or, with -cluster, one server and two nodes)
	// round by round so that a change in the machine's load hits all of
	// them alike.
	type variant struct {
		binary
		clustered bool
	}
	var variants []variant
	for _, b := range o.binaries {
		variants = append(variants, variant{binary: b})
	}
	if o.cluster {
		b := o.binaries[0]
		variants = []variant{{binary{"single-node", b.path}, false}, {binary{"cross-node", b.path}, true}}
		o.binaries = []binary{variants[0].binary, variants[1].binary}
	}
	figures := map[string][]float64{}
	for round := 1; round <= o.rounds; round++ {
		for _, v := range variants {
			b := v.binary
			if ctx.Err() != nil {
				return ctx.Err()
			}
			so := spawnOptions{binary: b.path, label: b.label, store: o.store, archive: o.archive,
				accounts: o.accountsNeeded(), ownBuild: ownBuild, plainOK: o.sec == secPlain, env: o.sets, pprof: o.pprof, keep: o.keep}
			var tg *target
			var err error
			if v.clustered {
				tg, err = spawnCluster(ctx, so)
			} else {
				tg, err = spawnAll(ctx, so, o.federated)
			}
			if err != nil {
				return err
			}
			fig, err := runScenario(ctx, o, tg, out)
			tg.stop()
			if tg.peer != nil {
				tg.peer.stop()
			}
			if err != nil {
				return fmt.Errorf("%s: %w", b.path, err)
			}
			figures[b.label] = append(figures[b.label], fig)
		}
	}
	if len(o.binaries) > 1 || o.rounds > 1 {
		base := median(figures[o.binaries[0].label])
		for _, b := range o.binaries {
			m := median(figures[b.label])
			ratio := 0.0
			if base != 0 {
				ratio = round3(m / base)
			}
			out.emit(comparison{Scenario: o.scenario, Comparison: true, Server: b.label, Metric: figureName[o.scenario],
				Rounds: figures[b.label], Median: m, RatioToFirst: ratio})
		}
	}
	return nil
}

// spawnAll starts the server to measure, or with federated two of them,
// a.test on 127.0.0.2 and b.test on 127.0.0.3, routing to each other over
// server-to-server connections (self-signed certificates: dialback).
func spawnAll(ctx context.Context, so spawnOptions, federated bool) (*target, error) {
	if !federated {
		tg, err := spawn(ctx, so)
		if err == nil {
			announce(so, tg)
		}
		return tg, err
	}
	s2sA, err := freeAddrOn("127.0.0.2")
	if err != nil {
		return nil, fmt.Errorf("-federated needs 127.0.0.2 and 127.0.0.3: %w", err)
	}
	s2sB, err := freeAddrOn("127.0.0.3")
	if err != nil {
		return nil, fmt.Errorf("-federated needs 127.0.0.2 and 127.0.0.3: %w", err)
	}
	a, b := so, so
	a.domain, a.ip, a.s2s, a.routes = "a.test", "127.0.0.2", s2sA, []string{"b.test=" + s2sB}
	b.domain, b.ip, b.s2s, b.routes = "b.test", "127.0.0.3", s2sB, []string{"a.test=" + s2sA}
	ta, err := spawn(ctx, a)
	if err != nil {
		return nil, err
	}
	tb, err := spawn(ctx, b)
	if err != nil {
		ta.stop()
		return nil, err
	}
	announce(a, ta)
	announce(b, tb)
	ta.peer = tb
	return ta, nil
}

// spawnCluster starts two nodes of one cluster, n1 on 127.0.0.2 and n2
// on 127.0.0.3, sharing a PostgreSQL schema and a NATS prefix of their
// own; the accounts are created once.
func spawnCluster(ctx context.Context, so spawnOptions) (*target, error) {
	id := strings.ToLower(rand.Text()[:10])
	so.schema, so.natsPrefix = "parley_bench_"+id, "pbench_"+id
	a, b := so, so
	a.node, a.ip = "n1", "127.0.0.2"
	b.node, b.ip, b.accounts = "n2", "127.0.0.3", 0
	cleanup := func() {
		dropSchema(postgresDSN(), so.schema)
		deleteBuckets(so.natsPrefix)
	}
	ta, err := spawn(ctx, a)
	if err != nil {
		cleanup()
		return nil, fmt.Errorf("-cluster needs 127.0.0.2, 127.0.0.3, PostgreSQL and NATS with JetStream: %w", err)
	}
	tb, err := spawn(ctx, b)
	if err != nil {
		ta.stop()
		cleanup()
		return nil, err
	}
	announce(a, ta)
	announce(b, tb)
	stopA, stopB := ta.stop, tb.stop
	ta.stop = func() { stopB(); stopA(); cleanup() }
	tb.stop = func() {}
	ta.peer, ta.clustered = tb, true
	return ta, nil
}

func announce(so spawnOptions, tg *target) {
	if so.pprof {
		fmt.Fprintf(os.Stderr, "parley-bench: %s (%s) pprof at http://%s/debug/pprof/\n", so.binary, tg.domain, tg.admin)
	}
	if so.keep {
		fmt.Fprintf(os.Stderr, "parley-bench: %s server log %s\n", tg.domain, tg.serverLogTip)
	}
}

// figureName is the headline figure of each scenario, compared across
// binaries.
var figureName = map[string]string{
	"throughput": "max_sustainable_rate",
	"idle":       "kib_per_conn",
	"login":      "logins_per_s",
	"muc":        "max_sustainable_rate",
	"mam":        "messages_per_s",
}

type comparison struct {
	Scenario     string    `json:"scenario"`
	Comparison   bool      `json:"comparison"`
	Server       string    `json:"server"`
	Metric       string    `json:"metric"`
	Rounds       []float64 `json:"rounds"`
	Median       float64   `json:"median"`
	RatioToFirst float64   `json:"ratio_to_first"`
}

// runScenario runs o.scenario once against tg and returns its headline
// figure.
func runScenario(ctx context.Context, o *options, tg *target, out *emitter) (float64, error) {
	d := &dialer{tg: tg, sec: o.sec, timeout: 30 * time.Second, spreadTo: 200}
	if o.scramCache {
		d.cache = newSaltCache()
	}
	switch o.scenario {
	case "throughput":
		sum, err := runThroughput(ctx, d, tg, o.tp, out)
		if err != nil {
			return 0, err
		}
		out.emit(sum)
		return float64(sum.MaxSustainable), nil
	case "login":
		r, err := runLogin(ctx, d, tg, o.login, out)
		return r.Rate, err
	case "idle":
		r, err := runIdle(ctx, d, tg, o.idle, out)
		return r.KiBPerConn, err
	case "mam":
		r, err := runMAM(ctx, d, tg, o.mam, out)
		return r.Rate, err
	case "muc":
		sum, err := runMUC(ctx, d, tg, o.muc, out)
		if err != nil {
			return 0, err
		}
		out.emit(sum)
		return float64(sum.MaxSustainable), nil
	}
	return 0, fmt.Errorf("unknown scenario %q", o.scenario)
}

// buildParley builds ./cmd/parley of the current module into a temporary
// directory.
func buildParley(ctx context.Context) (string, func(), error) {
	dir, err := os.MkdirTemp("", "parley-bench-bin-")
	if err != nil {
		return "", nil, err
	}
	path := filepath.Join(dir, "parley")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", path, "./cmd/parley")
	cmd.Stderr = os.Stderr
	fmt.Fprintln(os.Stderr, "parley-bench: building ./cmd/parley (use -parley PATH to skip)")
	if err := cmd.Run(); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("go build ./cmd/parley (run from the repository root, or give -parley): %w", err)
	}
	return path, func() { os.RemoveAll(dir) }, nil
}
