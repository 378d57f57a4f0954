/**
 * What `--repo s3:http[s]://HOST[:PORT]/BUCKET[/PREFIX]` names. Path-style addressing: the
 * bucket is the first path segment, so the endpoint is the URL's origin.
 */
import { UsageError } from '../errors.js';

export interface S3Location {
  /** The server, e.g. https://s3.example.com:9000 */
  readonly endpoint: string;
  readonly bucket: string;
  /** Object names are `${prefix}${name}`; "" or ending in "/". */
  readonly prefix: string;
  /** As the user wrote it, normalised, for messages. */
  readonly display: string;
}

export const S3_SCHEME = 's3:';

export function isS3Location(location: string): boolean {
  return location.startsWith(S3_SCHEME);
}

// S3's rules for bucket names (3–63 lower-case letters, digits, dots and hyphens).
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

export function parseS3Location(location: string): S3Location {
  // Credentials typed into the URL must not reach the message.
  const shown = location.replace(/\/\/[^@/]*@/, '//***@');
  const bad = (why: string) => new UsageError(`repository ${shown}: ${why}; expected s3:https://HOST[:PORT]/BUCKET[/PREFIX]`);
  if (!isS3Location(location)) throw bad('not an s3: location');
  // URL() would quietly resolve "a/../b": refuse dot segments as written.
  if (location.split(/[?#]/)[0]!.split('/').some((p) => p === '.' || p === '..')) throw bad('the path may not contain . or ..');
  let url: URL;
  try {
    url = new URL(location.slice(S3_SCHEME.length));
  } catch {
    throw bad('not a URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw bad(`the scheme must be http or https, not ${url.protocol.replace(':', '')}`);
  if (url.username || url.password) throw bad('credentials do not belong in the location (use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile)');
  if (url.search || url.hash) throw bad('a query or fragment is not allowed');
  const parts = url.pathname.split('/').filter((p) => p !== '');
  const bucket = parts.shift();
  if (!bucket) throw bad('no bucket');
  if (!BUCKET.test(bucket)) throw bad(`"${bucket}" is not a valid bucket name`);
  const prefix = parts.length > 0 ? `${parts.map(decodeURIComponent).join('/')}/` : '';
  return { endpoint: url.origin, bucket, prefix, display: `${S3_SCHEME}${url.origin}/${bucket}${prefix ? `/${prefix.slice(0, -1)}` : ''}` };
}
