package storage

import (
	"context"
	"time"
)

// UploadState is where an XEP-0363 upload slot is in its life.
type UploadState int

const (
	// UploadPending: the slot was handed out; nothing was PUT yet.
	UploadPending UploadState = iota
	// UploadInProgress: a PUT claimed the slot and is writing the file.
	UploadInProgress
	// UploadComplete: the file is stored and served.
	UploadComplete
)

// Upload is one XEP-0363 HTTP upload: a slot and, once complete, the
// stored file's metadata. The file's bytes live outside the database,
// under the ID.
type Upload struct {
	// ID is the random, unguessable slot identifier (part of the URLs and
	// the blob key).
	ID string
	// Owner is the bare JID of the uploader.
	Owner string
	// Filename is the sanitized file name (the last URL path segment).
	Filename string
	// Size is the declared size in bytes; the PUT must match it exactly.
	Size int64
	// ContentType is the declared media type, "" when none was given.
	ContentType string
	State       UploadState
	// Created is when the slot was handed out.
	Created time.Time
	// Expires is the deadline for starting the PUT.
	Expires time.Time
	// Completed is when the file was stored (zero before).
	Completed time.Time
}

// UploadUsage is one owner's stored files.
type UploadUsage struct {
	Owner string
	Files int
	Bytes int64
}

// UploadStats summarizes complete uploads.
type UploadStats struct {
	Files  int
	Bytes  int64
	Owners []UploadUsage // sorted by owner
}

// Uploads stores XEP-0363 upload slots and file metadata. The files
// themselves are kept by the upload module's blob store; callers delete
// blobs before the records that name them. Account deletion goes through
// the upload module's OnDeleteAccount hook (it must delete the files
// too), so DeleteAccount does not touch these records.
type Uploads interface {
	// CreateUpload stores u as a pending slot unless the owner's usage
	// plus u.Size would exceed quota (quota <= 0: no limit), in which case
	// it returns ErrQuotaExceeded. Usage counts complete files, uploads in
	// progress and pending slots that have not expired at u.Created.
	// ErrExists when the ID is taken.
	CreateUpload(ctx context.Context, u Upload, quota int64) error
	// Upload returns ErrNotFound when there is no such record.
	Upload(ctx context.Context, id string) (Upload, error)
	// StartUpload moves a pending slot to in progress (slots are single
	// use): ErrNotFound when there is none, ErrExists when it is not
	// pending any more.
	StartUpload(ctx context.Context, id string) error
	// CompleteUpload moves an upload in progress to complete at t;
	// ErrNotFound when there is no upload in progress with that ID.
	CompleteUpload(ctx context.Context, id string, t time.Time) error
	// DeleteUpload removes a record; removing what does not exist is not
	// an error.
	DeleteUpload(ctx context.Context, id string) error
	// OwnerUploads returns every record of owner (any state), oldest
	// first.
	OwnerUploads(ctx context.Context, owner string) ([]Upload, error)
	// UploadsCompletedBefore returns up to limit complete uploads
	// completed before t, oldest first (limit <= 0: no limit).
	UploadsCompletedBefore(ctx context.Context, t time.Time, limit int) ([]Upload, error)
	// DeleteStaleUploads removes pending slots that expired before
	// pendingBefore and uploads in progress whose slot expired before
	// startedBefore (abandoned PUTs), and returns how many it removed.
	DeleteStaleUploads(ctx context.Context, pendingBefore, startedBefore time.Time) (int, error)
	// UploadStats summarizes complete uploads.
	UploadStats(ctx context.Context) (UploadStats, error)
}
