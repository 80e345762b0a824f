#!/usr/bin/env node
// Starts s3rver (a real S3-compatible server, from npm) for Parley's
// upload tests on 127.0.0.1 with its files in a fresh temporary directory,
// creates the bucket, and prints one JSON line when ready:
//   {"endpoint":"127.0.0.1:PORT","bucket":"…","access_key":"…","secret_key":"…","dir":"…"}
// It stops (and removes the directory) when stdin closes, so a test that
// started it never leaves it behind, or on SIGINT/SIGTERM.
//
// Usage: node run-s3rver.js [--port 0] [--bucket parley-test]
//                           [--access-key parley] [--secret-key parley-secret]
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');

let S3rver, AWSAccount;
try {
  S3rver = require('s3rver');
  AWSAccount = require('s3rver/lib/models/account');
} catch (e) {
  process.stderr.write('s3rver is not installed: run scripts/ensure-s3rver.sh (npm install in test/s3)\n');
  process.exit(3);
}

function arg(name, def) {
  const i = process.argv.indexOf('--' + name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}

const port = Number(arg('port', '0'));
const bucket = arg('bucket', 'parley-test');
const accessKey = arg('access-key', 'parley');
const secretKey = arg('secret-key', 'parley-secret');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-s3rver-'));

// s3rver knows one built-in key pair (S3RVER/S3RVER); add ours to the same
// account so that signatures are really checked with our secret.
AWSAccount.DUMMY_ACCOUNT.createKeyPair(accessKey, secretKey);

const server = new S3rver({
  address: '127.0.0.1',
  port,
  directory: dir,
  silent: true,
  // Path-style only: bucket names are never taken from the Host header.
  vhostBuckets: false,
  configureBuckets: [{ name: bucket }],
});

let stopping = false;
function stop(code) {
  if (stopping) return;
  stopping = true;
  const done = () => {
    fs.rmSync(dir, { recursive: true, force: true });
    process.exit(code);
  };
  if (server.httpServer) {
    server.httpServer.closeAllConnections?.();
    server.close().then(done, done);
  } else {
    done();
  }
}

server.run().then(
  addr => {
    process.stdout.write(JSON.stringify({
      endpoint: `127.0.0.1:${addr.port}`,
      bucket,
      access_key: accessKey,
      secret_key: secretKey,
      dir,
    }) + '\n');
  },
  err => {
    process.stderr.write(`s3rver failed to start: ${err.stack || err}\n`);
    stop(1);
  },
);

process.stdin.on('end', () => stop(0));
process.stdin.on('close', () => stop(0));
process.stdin.resume();
process.on('SIGINT', () => stop(0));
process.on('SIGTERM', () => stop(0));
