package upload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Config configures S3Blobs: any S3-compatible object store (AWS S3,
// MinIO, Ceph RGW, Garage, …). The mapstructure tags are the keys of the
// upload.s3 section of the server configuration.
//
// Files always pass through Parley's own HTTPS endpoints (see S3Blobs);
// the object store never needs to be reachable by clients.
type S3Config struct {
	// Endpoint is host[:port] of the S3 API, without scheme, e.g.
	// "s3.eu-central-1.amazonaws.com" or "minio.internal:9000".
	Endpoint string `mapstructure:"endpoint"`
	// Bucket must exist; Parley does not create it.
	Bucket string `mapstructure:"bucket"`
	// Region of the bucket ("" lets the client ask the server; MinIO and
	// most others accept "us-east-1").
	Region string `mapstructure:"region"`
	// Prefix is prepended to object names, so one bucket can be shared,
	// e.g. "parley/upload/".
	Prefix string `mapstructure:"prefix"`
	// AccessKey and SecretKey are the credentials. The secret need not be
	// in the file: set it with PARLEY_UPLOAD_S3_SECRET_KEY or name a file
	// holding it in SecretKeyFile (surrounding white space is ignored).
	AccessKey     string `mapstructure:"access_key"`
	SecretKey     string `mapstructure:"secret_key"`
	SecretKeyFile string `mapstructure:"secret_key_file"`
	// UseSSL talks HTTPS to the endpoint (keep it on unless the store is on
	// loopback or a private link: over HTTP the payload is not signed).
	UseSSL bool `mapstructure:"use_ssl"`
	// PathStyle addresses the bucket as endpoint/bucket/key instead of
	// bucket.endpoint/key (needed by many self-hosted stores; IP-address
	// endpoints always use path style).
	PathStyle bool `mapstructure:"path_style"`
}

// Problems returns what is wrong with the configuration, each as
// "key: problem" with the key relative to the upload.s3 section.
// It does no I/O.
func (c S3Config) Problems() []string {
	var p []string
	switch ep := c.Endpoint; {
	case ep == "":
		p = append(p, "endpoint: expected the S3 endpoint as host[:port], e.g. s3.amazonaws.com or minio.internal:9000")
	case strings.Contains(ep, "://"):
		p = append(p, fmt.Sprintf("endpoint: %q must be host[:port] without a scheme (use_ssl chooses https or http)", ep))
	case strings.ContainsAny(ep, "/?# "):
		p = append(p, fmt.Sprintf("endpoint: %q must be host[:port] without a path", ep))
	}
	if c.Bucket == "" {
		p = append(p, "bucket: expected the name of an existing bucket")
	}
	if c.AccessKey == "" {
		p = append(p, "access_key: expected the access key id (or PARLEY_UPLOAD_S3_ACCESS_KEY)")
	}
	switch {
	case c.SecretKey == "" && c.SecretKeyFile == "":
		p = append(p, "secret_key: expected the secret key, from secret_key, PARLEY_UPLOAD_S3_SECRET_KEY or a file named by secret_key_file")
	case c.SecretKey != "" && c.SecretKeyFile != "":
		p = append(p, "secret_key_file: set either secret_key or secret_key_file, not both")
	}
	return p
}

// S3Blobs keeps blobs as objects <prefix><key> in a bucket of an
// S3-compatible store.
//
// Uploads and downloads are proxied: Parley's PUT handler checks the slot
// (signature, single use, expiry, exact Content-Length and Content-Type,
// quota) and streams the body to the store, and GET/HEAD stream the
// object back with Parley's headers and range handling. Presigned S3 URLs
// are not handed to clients, because they would lose guarantees: a
// presigned PUT can be replayed until it expires and Parley would not
// learn when it completed (state, quota, metrics), a presigned GET lives at
// most seven days while an XEP-0363 GET URL must work as long as the file
// is kept, and S3 cannot add the Content-Security-Policy and nosniff
// headers nor stop serving a file the instant its record is deleted.
//
// Objects appear only when complete: files up to partSize go up in one
// PUT, larger ones as a multipart upload that is aborted on any error.
type S3Blobs struct {
	c      *minio.Client
	bucket string
	prefix string
	desc   string // for messages: http(s)://endpoint/bucket
}

var _ Blobs = (*S3Blobs)(nil)

const (
	// s3PartSize is the multipart part size (and the largest single PUT);
	// each upload in progress buffers one part.
	s3PartSize = 8 << 20
	// s3MaxParts stays below S3's limit of 10,000 parts.
	s3MaxParts = 9000
	// s3OpTimeout bounds calls made without a caller's context.
	s3OpTimeout = time.Minute
	// s3AbortGrace is how long an interrupted upload may take to abort
	// its multipart upload before the request is cancelled too.
	s3AbortGrace = 30 * time.Second
	// s3DiscardAgain is when a failed Put's object is deleted once more.
	s3DiscardAgain = 2 * time.Second
)

// NewS3Blobs connects to the store and checks, within ctx, that the bucket
// exists and the credentials may list it. Errors name the configuration
// key at fault (upload.s3.endpoint, .bucket, .access_key/.secret_key).
func NewS3Blobs(ctx context.Context, cfg S3Config) (*S3Blobs, error) {
	if p := cfg.Problems(); len(p) > 0 {
		return nil, fmt.Errorf("upload.s3.%s", strings.Join(p, "; upload.s3."))
	}
	secret := cfg.SecretKey
	if cfg.SecretKeyFile != "" {
		b, err := os.ReadFile(cfg.SecretKeyFile)
		if err != nil {
			return nil, fmt.Errorf("upload.s3.secret_key_file: %w", err)
		}
		if secret = strings.TrimSpace(string(b)); secret == "" {
			return nil, fmt.Errorf("upload.s3.secret_key_file: %s is empty", cfg.SecretKeyFile)
		}
	}
	lookup := minio.BucketLookupAuto
	if cfg.PathStyle {
		lookup = minio.BucketLookupPath
	}
	c, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(cfg.AccessKey, secret, ""),
		Secure:       cfg.UseSSL,
		Region:       cfg.Region,
		BucketLookup: lookup,
		// Fail fast at startup and per request; the HTTP client retries
		// a PUT itself by requesting a new slot.
		MaxRetries: 2,
	})
	if err != nil {
		return nil, fmt.Errorf("upload.s3.endpoint: %q: %w", cfg.Endpoint, err)
	}
	scheme := "http"
	if cfg.UseSSL {
		scheme = "https"
	}
	b := &S3Blobs{c: c, bucket: cfg.Bucket, prefix: cfg.Prefix,
		desc: scheme + "://" + cfg.Endpoint + "/" + cfg.Bucket}
	if err := b.check(ctx, cfg); err != nil {
		return nil, err
	}
	return b, nil
}

// check lists at most one object: the bucket exists, the endpoint
// answers and the credentials may list (Usage needs that).
func (b *S3Blobs) check(ctx context.Context, cfg S3Config) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var err error
	for o := range b.c.ListObjects(ctx, b.bucket, minio.ListObjectsOptions{Prefix: b.prefix, MaxKeys: 1}) {
		err = o.Err
		break
	}
	if err == nil {
		return nil
	}
	var netErr net.Error
	resp := minio.ToErrorResponse(err)
	switch {
	case resp.Code == minio.NoSuchBucket:
		return fmt.Errorf("upload.s3.bucket: bucket %q does not exist at %s (create it first)", cfg.Bucket, b.desc)
	case resp.Code == minio.InvalidAccessKeyID || resp.Code == "SignatureDoesNotMatch" || resp.Code == minio.AccessDenied ||
		resp.StatusCode == 401 || resp.StatusCode == 403:
		return fmt.Errorf("upload.s3.access_key/secret_key: %s refused to list bucket %q: %v", b.desc, cfg.Bucket, err)
	case resp.Code == "AuthorizationHeaderMalformed" || resp.Code == "InvalidRegion":
		return fmt.Errorf("upload.s3.region: %s: %v", b.desc, err)
	case resp.Code != "":
		return fmt.Errorf("upload.s3: %s: listing bucket %q: %v", b.desc, cfg.Bucket, err)
	case errors.As(err, &netErr), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return fmt.Errorf("upload.s3.endpoint: cannot reach %s: %v", b.desc, err)
	default:
		return fmt.Errorf("upload.s3.endpoint: %s does not answer like an S3 server: %v", b.desc, err)
	}
}

// Describe names the store (http(s)://endpoint/bucket), for logs.
func (b *S3Blobs) Describe() string { return b.desc }

func (b *S3Blobs) object(key string) (string, error) {
	if !validID(key) {
		return "", fmt.Errorf("upload: invalid blob key %q", key)
	}
	return b.prefix + key, nil
}

// Put implements Blobs. The body is read through exactReader, which fails
// the transfer before its last byte is sent when r has more or fewer than
// size bytes, so that no object is created.
func (b *S3Blobs) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	name, err := b.object(key)
	if err != nil {
		return err
	}
	if size < 0 {
		return ErrSizeMismatch
	}
	// The reader notices the caller's cancellation (and fails the
	// transfer); the store calls keep running a little longer so that an
	// interrupted multipart upload is aborted, not left behind.
	putCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(s3AbortGrace, cancel) })
	defer stop()
	er := &exactReader{r: ctxReader{ctx, r}, left: size}
	info, err := b.c.PutObject(putCtx, b.bucket, name, er, size, minio.PutObjectOptions{
		ContentType: "application/octet-stream",
		PartSize:    uint64(max(s3PartSize, (size+s3MaxParts-1)/s3MaxParts)),
		// UNSIGNED-PAYLOAD instead of aws-chunked streaming signatures,
		// which some S3-compatible servers do not decode.
		DisableContentSha256: true,
	})
	switch {
	case er.err != nil:
		err = er.err
	case err == nil && info.Size != size:
		err = fmt.Errorf("upload: %s stored %d bytes of %d", b.desc, info.Size, size)
	}
	if err != nil {
		blobErrors.WithLabelValues("put").Inc()
		b.discard(key)
		if errors.Is(err, ErrSizeMismatch) {
			return ErrSizeMismatch
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("upload: storing %s in %s: %w", key, b.desc, err)
	}
	return nil
}

// discard deletes what a failed Put may have left. S3 itself never
// creates an object from an incomplete PUT, but some S3-compatible servers
// (s3rver, for one) write what they received once the connection closes,
// which may be after a first Delete: delete again a little later. The key
// is never used again (the slot is spent).
func (b *S3Blobs) discard(key string) {
	_ = b.Delete(key)
	time.AfterFunc(s3DiscardAgain, func() { _ = b.Delete(key) })
}

// exactReader gives the bytes of r when there are exactly left of them.
// It checks for extra bytes while returning the last ones, so a wrong
// size is an error before the consumer has seen everything.
type exactReader struct {
	r    io.Reader
	left int64
	err  error // sticky
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	if e.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	switch {
	case e.left > 0 && err == io.EOF:
		e.err = ErrSizeMismatch
		return n, e.err
	case err != nil && err != io.EOF:
		e.err = err
		return n, err
	case e.left == 0:
		var probe [1]byte
		for {
			m, perr := e.r.Read(probe[:])
			if m > 0 {
				e.err = ErrSizeMismatch
				return n, e.err
			}
			if perr == io.EOF {
				return n, nil
			}
			if perr != nil {
				e.err = perr
				return n, perr
			}
		}
	}
	return n, nil
}

// Open implements Blobs: one HEAD now, then a GET (with a Range from the
// current offset) at the first Read after each Seek.
func (b *S3Blobs) Open(key string) (io.ReadSeekCloser, time.Time, int64, error) {
	name, err := b.object(key)
	if err != nil {
		return nil, time.Time{}, 0, fmt.Errorf("%w: %v", fs.ErrNotExist, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), s3OpTimeout)
	defer cancel()
	st, err := b.c.StatObject(ctx, b.bucket, name, minio.StatObjectOptions{})
	if err != nil {
		if minio.ToErrorResponse(err).Code == minio.NoSuchKey {
			return nil, time.Time{}, 0, fmt.Errorf("upload: %s in %s: %w", key, b.desc, fs.ErrNotExist)
		}
		blobErrors.WithLabelValues("open").Inc()
		return nil, time.Time{}, 0, fmt.Errorf("upload: stat %s in %s: %w", key, b.desc, err)
	}
	return &s3Reader{b: b, name: name, etag: st.ETag, size: st.Size}, st.LastModified, st.Size, nil
}

// s3Reader reads an object lazily from an offset.
type s3Reader struct {
	b          *S3Blobs
	name, etag string
	size, pos  int64
	body       io.ReadCloser
	cancel     context.CancelFunc
}

func (r *s3Reader) Read(p []byte) (int, error) {
	if r.pos >= r.size {
		return 0, io.EOF
	}
	if r.body == nil {
		ctx, cancel := context.WithCancel(context.Background())
		opts := minio.GetObjectOptions{}
		if r.etag != "" {
			_ = opts.SetMatchETag(r.etag)
		}
		if r.pos > 0 {
			_ = opts.SetRange(r.pos, 0)
		}
		body, _, _, err := minio.Core{Client: r.b.c}.GetObject(ctx, r.b.bucket, r.name, opts)
		if err != nil {
			cancel()
			blobErrors.WithLabelValues("get").Inc()
			return 0, fmt.Errorf("upload: reading %s from %s: %w", r.name, r.b.desc, err)
		}
		r.body, r.cancel = body, cancel
	}
	n, err := r.body.Read(p)
	r.pos += int64(n)
	if err == io.EOF && r.pos < r.size {
		err = io.ErrUnexpectedEOF
	}
	if err != nil && err != io.EOF {
		blobErrors.WithLabelValues("get").Inc()
	}
	return n, err
}

func (r *s3Reader) Seek(offset int64, whence int) (int64, error) {
	var pos int64
	switch whence {
	case io.SeekStart:
		pos = offset
	case io.SeekCurrent:
		pos = r.pos + offset
	case io.SeekEnd:
		pos = r.size + offset
	default:
		return r.pos, errors.New("upload: invalid whence")
	}
	if pos < 0 {
		return r.pos, errors.New("upload: negative position")
	}
	if pos != r.pos {
		r.closeBody()
		r.pos = pos
	}
	return pos, nil
}

func (r *s3Reader) closeBody() {
	if r.body != nil {
		r.body.Close()
		r.cancel()
		r.body, r.cancel = nil, nil
	}
}

func (r *s3Reader) Close() error {
	r.closeBody()
	return nil
}

// Delete implements Blobs.
func (b *S3Blobs) Delete(key string) error {
	name, err := b.object(key)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), s3OpTimeout)
	defer cancel()
	// S3 answers success for a missing key.
	if err := b.c.RemoveObject(ctx, b.bucket, name, minio.RemoveObjectOptions{}); err != nil &&
		minio.ToErrorResponse(err).Code != minio.NoSuchKey {
		blobErrors.WithLabelValues("delete").Inc()
		return fmt.Errorf("upload: deleting %s from %s: %w", key, b.desc, err)
	}
	return nil
}

// Usage implements Blobs: the sizes of the objects under the prefix that
// are blobs (listing the bucket: one request per 1000 objects).
func (b *S3Blobs) Usage(ctx context.Context) (int64, error) {
	var total int64
	for o := range b.c.ListObjects(ctx, b.bucket, minio.ListObjectsOptions{Prefix: b.prefix, Recursive: true}) {
		if o.Err != nil {
			blobErrors.WithLabelValues("usage").Inc()
			return total, fmt.Errorf("upload: listing %s: %w", b.desc, o.Err)
		}
		if validID(strings.TrimPrefix(o.Key, b.prefix)) {
			total += o.Size
		}
	}
	return total, nil
}
