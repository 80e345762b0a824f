// Package s3opt points a test server's uploads (upload.backend s3) at the
// S3 server of package s3test. It is apart from s3test because the upload
// package's own tests use s3test, and this package imports upload. Tests
// only.
package s3opt

import (
	"testing"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/server"
	s3test "github.com/parley-xmpp/parley/test/s3"
	"github.com/parley-xmpp/parley/upload"
)

// Config is the upload.s3 section for srv, with object names under prefix.
func Config(srv s3test.Server, prefix string) upload.S3Config {
	return upload.S3Config{Endpoint: srv.Endpoint, Bucket: srv.Bucket, Region: srv.Region, Prefix: prefix,
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, UseSSL: srv.UseSSL, PathStyle: true}
}

// Option starts (or finds) the S3 server, skipping the test without one,
// and returns a testserver option that stores uploads in it under a fresh
// prefix, with the server and the prefix.
func Option(t testing.TB) (testserver.Option, s3test.Server, string) {
	t.Helper()
	srv := s3test.Start(t)
	prefix := srv.Prefix(t)
	t.Logf("S3: %s/%s (%s), prefix %s", srv.Endpoint, srv.Bucket, srv.Source, prefix)
	return func(c *server.Config) {
		c.Upload.Backend = "s3"
		c.Upload.S3 = Config(srv, prefix)
	}, srv, prefix
}
