package upload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Blobs stores file contents by key (the slot id).
type Blobs interface {
	// Put stores exactly size bytes read from r under key. The blob
	// becomes visible to Open only when it is complete; on any error
	// (including r giving fewer or more than size bytes:
	// ErrSizeMismatch) nothing is stored.
	Put(ctx context.Context, key string, r io.Reader, size int64) error
	// Open returns the blob, its modification time and size;
	// fs.ErrNotExist (wrapped) when there is none.
	Open(key string) (io.ReadSeekCloser, time.Time, int64, error)
	// Delete removes a blob; a missing blob is not an error.
	Delete(key string) error
	// Usage returns the bytes stored.
	Usage(ctx context.Context) (int64, error)
}

// ErrSizeMismatch is returned by Blobs.Put when the reader does not give
// exactly the announced number of bytes.
var ErrSizeMismatch = errors.New("upload: body size does not match the slot")

// DiskBlobs keeps blobs as files in a directory: dir/<key[:2]>/<key>.
// Writes go to a temporary file in the same directory (.tmp-*), which is
// synced and renamed into place when complete.
type DiskBlobs struct {
	dir string
}

var _ Blobs = (*DiskBlobs)(nil)

const tmpPrefix = ".tmp-"

// NewDiskBlobs creates dir (mode 0700) if needed and removes temporary
// files left by an earlier process (uploads interrupted by a crash).
func NewDiskBlobs(dir string) (*DiskBlobs, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	b := &DiskBlobs{dir: dir}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasPrefix(d.Name(), tmpPrefix) {
			return os.Remove(path)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("upload: cleaning %s: %w", dir, err)
	}
	return b, nil
}

// Dir returns the directory.
func (b *DiskBlobs) Dir() string { return b.dir }

func (b *DiskBlobs) path(key string) (string, error) {
	if !validID(key) {
		return "", fmt.Errorf("upload: invalid blob key %q", key)
	}
	return filepath.Join(b.dir, key[:2], key), nil
}

// Put implements Blobs.
func (b *DiskBlobs) Put(ctx context.Context, key string, r io.Reader, size int64) (err error) {
	final, err := b.path(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(final), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(final), tmpPrefix+key+"-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	n, err := io.Copy(f, io.LimitReader(ctxReader{ctx, r}, size+1))
	if err != nil {
		return err
	}
	if n != size {
		return ErrSizeMismatch
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), final)
}

// ctxReader stops a copy when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Open implements Blobs.
func (b *DiskBlobs) Open(key string) (io.ReadSeekCloser, time.Time, int64, error) {
	p, err := b.path(key)
	if err != nil {
		return nil, time.Time{}, 0, fmt.Errorf("%w: %v", fs.ErrNotExist, err)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, time.Time{}, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, time.Time{}, 0, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, time.Time{}, 0, fmt.Errorf("upload: %s: %w", p, fs.ErrNotExist)
	}
	return f, fi.ModTime(), fi.Size(), nil
}

// Delete implements Blobs.
func (b *DiskBlobs) Delete(key string) error {
	p, err := b.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Usage implements Blobs: the sizes of all complete blobs.
func (b *DiskBlobs) Usage(ctx context.Context) (int64, error) {
	var total int64
	err := filepath.WalkDir(b.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while walking
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || strings.HasPrefix(d.Name(), tmpPrefix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		total += fi.Size()
		return nil
	})
	return total, err
}
