package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is USER_HZ, the unit of utime/stime in /proc/PID/stat; it is
// 100 on every Linux architecture Go supports.
const clockTick = 100

// cpuTime returns the user+system CPU time a process has used.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may contain spaces; fields after it are
	// counted from its closing parenthesis.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return time.Duration(utime+stime) * time.Second / clockTick, nil
}

// rssKiB returns VmRSS from /proc/PID/status.
func rssKiB(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			v = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB"))
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}

// cpuMeter measures the CPU a process used over an interval, in percent
// of one core (200 % is both cores of a 2-core machine).
type cpuMeter struct {
	pid   int
	start time.Time
	cpu0  time.Duration
	ok    bool
}

func startCPU(pid int) *cpuMeter {
	m := &cpuMeter{pid: pid, start: time.Now()}
	if pid > 0 {
		c, err := cpuTime(pid)
		m.cpu0, m.ok = c, err == nil
	}
	return m
}

// percent returns the CPU used since start, or -1 when unknown.
func (m *cpuMeter) percent() float64 {
	if !m.ok {
		return -1
	}
	c, err := cpuTime(m.pid)
	wall := time.Since(m.start)
	if err != nil || wall <= 0 {
		return -1
	}
	return round1(100 * float64(c-m.cpu0) / float64(wall))
}

// metrics reads the Prometheus text exposition of the server's admin
// listener and returns the samples without labels it asked for.
func metrics(admin string, names ...string) map[string]float64 { return metricSums(admin, names...) }

// loadAvg returns the machine's one-minute load average (how busy the
// shared machine was: figures from a loaded machine compare only with
// figures from the same sitting).
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}

// metricSums reads the admin listener's metrics and sums, per metric name,
// the samples of every label set.
func metricSums(admin string, names ...string) map[string]float64 {
	out := map[string]float64{}
	if admin == "" {
		return out
	}
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + admin + "/metrics")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	s := bufio.NewScanner(resp.Body)
	s.Buffer(make([]byte, 64<<10), 1<<20)
	for s.Scan() {
		line := s.Text()
		i := strings.IndexAny(line, "{ ")
		if i < 0 || !want[line[:i]] {
			continue
		}
		j := strings.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(line[j+1:], 64); err == nil {
			out[line[:i]] += v
		}
	}
	return out
}
