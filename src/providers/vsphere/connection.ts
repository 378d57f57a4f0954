/** A vCenter connection: who logs in where, trusting which certificate; and its session. */
import { VsphereSession } from '../../vsphere/session.js';
import { type TlsPolicy, normalizeThumbprint } from '../../vsphere/tls.js';

export interface VcenterConnection {
  readonly url: string;
  readonly user: string;
  readonly password: string;
  readonly tls: TlsPolicy;
}

/** Certificate trust from a thumbprint or insecure (flags or a recipe); the system CAs by default. */
export function tlsPolicy(thumbprint: string | undefined, insecure: boolean | undefined): TlsPolicy {
  return insecure ? { kind: 'insecure' }
    : thumbprint ? { kind: 'pinned', thumbprint: normalizeThumbprint(thumbprint) }
    : { kind: 'system' };
}

export function connect(c: VcenterConnection): Promise<VsphereSession> {
  return VsphereSession.connect({ url: c.url, user: c.user, password: c.password, tls: c.tls });
}
