package storage

import (
	"context"
	"time"
)

// PushJob is one XEP-0357 notification waiting for (another) delivery
// attempt to an App Server: the publish request itself and the
// registration it is for.
type PushJob struct {
	// ID is assigned by EnqueuePushJob.
	ID    int64
	Owner string // bare JID of the user
	JID   string // the App Server
	Node  string
	// RegCreated is the registration's creation time when the job was
	// made, so that an error answer disables the registration only if it
	// was not re-enabled since.
	RegCreated time.Time
	// Payload is the serialized publish IQ, passed through unchanged.
	Payload []byte
	// Due is when the job may be (re)tried; Attempts how many delivery
	// attempts failed so far.
	Due      time.Time
	Attempts int
	Created  time.Time
}

// PushJobs is the durable queue of push notifications (XEP-0357 delivery
// with retries). Jobs survive restarts; a job is deleted once delivered,
// given up, or its registration disabled.
type PushJobs interface {
	// EnqueuePushJob stores j (its ID is ignored) and returns the new ID.
	EnqueuePushJob(ctx context.Context, j PushJob) (int64, error)
	// DuePushJobs returns at most limit jobs with Due <= now, earliest
	// first. It only reads: to send jobs, claim them with ClaimPushJobs.
	DuePushJobs(ctx context.Context, now time.Time, limit int) ([]PushJob, error)
	// ClaimPushJobs takes at most limit jobs with Due <= now (the earliest
	// due ones) and leases them in one atomic step: their Due becomes
	// until, so no other caller, in this process or on another node
	// sharing the database, gets them again before until. It returns them
	// with the new Due, in no particular order.
	ClaimPushJobs(ctx context.Context, now, until time.Time, limit int) ([]PushJob, error)
	// RescheduleJob sets a job's Due and Attempts. Rescheduling a job that
	// no longer exists is not an error.
	RescheduleJob(ctx context.Context, id int64, next time.Time, attempts int) error
	// DeleteJob removes a job; deleting one that does not exist is not an
	// error.
	DeleteJob(ctx context.Context, id int64) error
}
