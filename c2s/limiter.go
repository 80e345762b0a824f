package c2s

import (
	"context"
	"time"
)

// limiter is a token bucket on stanzas a client sends. When it is empty
// the reader waits, so a flooding client is slowed (TCP backpressure)
// rather than disconnected or allowed to starve others.
type limiter struct {
	rate   float64 // tokens per second
	burst  float64
	tokens float64
	last   time.Time
}

func newLimiter(perSecond int) *limiter {
	if perSecond <= 0 {
		return nil
	}
	return &limiter{rate: float64(perSecond), burst: float64(2 * perSecond), tokens: float64(2 * perSecond), last: time.Now()}
}

func (l *limiter) wait(ctx context.Context) {
	if l == nil {
		return
	}
	now := time.Now()
	l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	l.last = now
	if l.tokens >= 1 {
		l.tokens--
		return
	}
	d := time.Duration((1 - l.tokens) / l.rate * float64(time.Second))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	l.tokens = 0
	l.last = time.Now()
}
