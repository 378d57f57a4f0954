/** The S3 backend's pure parts: locations, retry policy, error classification. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UsageError } from '../src/errors.js';
import { RetryCounter, backoffMs, withRetries } from '../src/storage/retry.js';
import { describeS3Error, s3ErrorCode, s3Retryable } from '../src/storage/s3-errors.js';
import { parseS3Location } from '../src/storage/s3-location.js';

describe('s3: locations', () => {
  it('parses endpoint, bucket and prefix', () => {
    assert.deepEqual(parseS3Location('s3:https://s3.example.com/backups'),
      { endpoint: 'https://s3.example.com', bucket: 'backups', prefix: '', display: 's3:https://s3.example.com/backups' });
    assert.deepEqual(parseS3Location('s3:http://127.0.0.1:7480/vm-backups/site-a/repo1/'),
      { endpoint: 'http://127.0.0.1:7480', bucket: 'vm-backups', prefix: 'site-a/repo1/', display: 's3:http://127.0.0.1:7480/vm-backups/site-a/repo1' });
  });

  it('refuses what is not an S3 repository, saying why', () => {
    const cases: [string, RegExp][] = [
      ['s3:ftp://host/b', /scheme must be http or https/],
      ['s3:https://host', /no bucket/],
      ['s3:https://host/Bad_Bucket', /not a valid bucket name/],
      ['s3:https://key:secret@host/bucket', /credentials do not belong/],
      ['s3:https://host/bucket/../x', /may not contain \. or \.\./],
      ['s3:https://host/bucket?x=1', /query/],
      ['s3:not a url', /not a URL/],
    ];
    for (const [location, why] of cases) {
      assert.throws(() => parseS3Location(location), (err: unknown) => err instanceof UsageError && why.test(err.message) && !err.message.includes('secret'), location);
    }
  });
});

describe('s3: errors', () => {
  const sdk = (name: string, status: number, message = '') => Object.assign(new Error(message), { name, $metadata: { httpStatusCode: status } });
  const net = (code: string) => Object.assign(new Error(`connect ${code} 127.0.0.1:1`), { code });

  it('names the failure by S3 code, network code or HTTP status', () => {
    assert.equal(s3ErrorCode(sdk('NoSuchKey', 404)), 'NoSuchKey');
    assert.equal(s3ErrorCode(sdk('Unknown', 502)), 'HTTP 502');
    assert.equal(s3ErrorCode(net('ECONNREFUSED')), 'ECONNREFUSED');
    assert.equal(describeS3Error(sdk('SlowDown', 503, 'Please reduce your request rate.')), 'SlowDown (HTTP 503): Please reduce your request rate.');
  });

  it('retries throttling, server errors and broken connections; never a refusal', () => {
    assert.equal(s3Retryable(sdk('SlowDown', 503)), 'SlowDown');
    assert.equal(s3Retryable(sdk('Unknown', 500)), 'HTTP 500');
    assert.equal(s3Retryable(net('ECONNRESET')), 'ECONNRESET');
    assert.equal(s3Retryable(Object.assign(new Error('socket hang up'), {})), 'connection cut');
    for (const final of [sdk('AccessDenied', 403), sdk('NoSuchKey', 404), sdk('PreconditionFailed', 412), sdk('InvalidRange', 416), net('ENOTFOUND')]) {
      assert.equal(s3Retryable(final), undefined, s3ErrorCode(final));
    }
  });
});

describe('s3: retries', () => {
  it('backs off exponentially with full jitter, capped', () => {
    const policy = { attempts: 10, baseMs: 100, capMs: 1000 };
    assert.equal(backoffMs(policy, 0, () => 0.999), 99);
    assert.equal(backoffMs(policy, 3, () => 0.5), 400);
    assert.equal(backoffMs(policy, 8, () => 0.999), 999, 'capped');
    assert.equal(backoffMs(policy, 2, () => 0), 0);
  });

  it('tries again while retryable, counts each retry by cause, and gives up after the attempts', async () => {
    const counter = new RetryCounter();
    const waits: number[] = [];
    let calls = 0;
    const result = await withRetries(async () => {
      calls++;
      if (calls < 4) throw Object.assign(new Error('x'), { code: calls === 1 ? 'ECONNRESET' : 'EPIPE' });
      return 'ok';
    }, { retryable: (e) => (e as { code: string }).code, counter, policy: { attempts: 5, baseMs: 10, capMs: 100 }, sleep: async (ms) => { waits.push(ms); }, random: () => 0.5 });
    assert.equal(result, 'ok');
    assert.equal(counter.count, 3);
    assert.deepEqual(counter.causes(), { ECONNRESET: 1, EPIPE: 2 });
    assert.deepEqual(waits, [5, 10, 20]);

    const spent = new RetryCounter();
    await assert.rejects(withRetries(async () => { throw Object.assign(new Error('down'), { code: 'ECONNREFUSED' }); },
      { retryable: () => 'ECONNREFUSED', counter: spent, policy: { attempts: 3, baseMs: 1, capMs: 1 }, sleep: async () => {} }), /down/);
    assert.equal(spent.count, 2, 'two retries after the first try');

    const final = new RetryCounter();
    await assert.rejects(withRetries(async () => { throw new Error('denied'); }, { retryable: () => undefined, counter: final }), /denied/);
    assert.equal(final.count, 0);
  });
});
