package testserver

import (
	"testing"

	"github.com/parley-xmpp/parley/server"
	s3test "github.com/parley-xmpp/parley/test/s3"
	"github.com/parley-xmpp/parley/upload"
)

// S3Config is the upload.s3 section for srv, with object names under
// prefix.
func S3Config(srv s3test.Server, prefix string) upload.S3Config {
	return upload.S3Config{Endpoint: srv.Endpoint, Bucket: srv.Bucket, Region: srv.Region, Prefix: prefix,
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, UseSSL: srv.UseSSL, PathStyle: true}
}

// OnS3 starts (or finds) the S3 server of package s3test, skipping the
// test without one, and returns an option that stores uploads in it
// (upload.backend s3) under a fresh prefix, with the server and the
// prefix.
func OnS3(t testing.TB) (Option, s3test.Server, string) {
	t.Helper()
	srv := s3test.Start(t)
	prefix := srv.Prefix(t)
	t.Logf("S3: %s/%s (%s), prefix %s", srv.Endpoint, srv.Bucket, srv.Source, prefix)
	return func(c *server.Config) {
		c.Upload.Backend = "s3"
		c.Upload.S3 = S3Config(srv, prefix)
	}, srv, prefix
}
