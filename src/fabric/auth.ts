/**
 * Basic authentication of a local OpenWhisk cluster: one key (`uuid:key`) owning one namespace, as an OpenWhisk
 * deployment's `guest` key does. `_` in a path means "the caller's default namespace".
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { FabricConfigError, WhiskHttpError } from './errors.js';

const AUTH_PATTERN = /^[^:\s]+:[^\s]+$/;

export class ClusterAuth {
  private readonly digest: Buffer;
  /** The authenticated subject (a real deployment uses the namespace owner's name). */
  readonly subject: string;

  constructor(
    auth: string,
    readonly namespace: string,
    label = 'cluster',
  ) {
    if (!AUTH_PATTERN.test(auth)) {
      throw new FabricConfigError(`${label}: auth must look like "uuid:key" (two non-empty parts, no spaces)`);
    }
    this.digest = sha256(auth);
    this.expected = Buffer.from(`Basic ${Buffer.from(auth, 'utf8').toString('base64')}`, 'latin1');
    this.subject = namespace;
  }

  /** The header every client sends for this key (`Basic ` + base64 of it): checked first, without decoding or hashing. */
  private readonly expected: Buffer;

  /**
   * Throws 401 unless the `Authorization` header carries this cluster's key: without Basic credentials (none, another
   * scheme, unreadable) the controller says they were not supplied, with a wrong key that they are invalid.
   */
  check(header: string | undefined): void {
    if (header !== undefined && header.length === this.expected.length && timingSafeEqual(Buffer.from(header, 'latin1'), this.expected)) return;
    const m = /^Basic\s+([A-Za-z0-9+/]+={0,2})\s*$/i.exec(header ?? '');
    if (!m) throw WhiskHttpError.unauthenticated(true);
    const given = Buffer.from(m[1]!, 'base64').toString('utf8');
    if (!timingSafeEqual(sha256(given), this.digest)) throw WhiskHttpError.unauthenticated();
  }

  /**
   * The namespace a path segment names: `_` or this cluster's namespace; anything else → 403 naming the resource
   * (`NS`, or `NS/NAME` for an entity), as the controller's entitlement check does.
   */
  resolveNamespace(segment: string, entity?: string): string {
    if (segment === '_' || segment === this.namespace) return this.namespace;
    throw WhiskHttpError.forbidden(entity === undefined ? segment : `${segment}/${entity}`);
  }
}

function sha256(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}
