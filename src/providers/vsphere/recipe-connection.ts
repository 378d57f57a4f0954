/**
 * A recipe's `connection` for vSphere: where the vCenter is, who logs in, where the
 * password is, which certificate to trust. The provider's part of the recipe schema
 * (recipe/schema.ts places it), so another provider brings its own.
 */
import { z } from 'zod';

const text = z.string().min(1);

/** SHA-1 (20 bytes) or SHA-256 (32 bytes) as hex, bytes optionally separated by ":" or "-". */
export const THUMBPRINT = '^[0-9A-Fa-f]{2}(?:[:-]?[0-9A-Fa-f]{2}){19}(?:(?:[:-]?[0-9A-Fa-f]{2}){12})?$';

/** A URL with another scheme than https is refused here rather than when connecting. */
export const vcenter = text.refine((s) => !/^[a-z][a-z0-9+.-]*:\/\//i.test(s) || /^https:\/\//i.test(s), {
  error: (iss) => `must be an https:// URL or a host name (got ${JSON.stringify(iss.input)})`,
});

export const connectionSchema = z.strictObject({
  vcenter: vcenter.describe('vCenter or ESXi: https://HOST[/sdk] or HOST'),
  user: text,
  passwordFile: text.optional().describe("a file whose first line is the user's password"),
  passwordEnv: text.optional().describe("an environment variable holding the user's password"),
  thumbprint: z.string().regex(new RegExp(THUMBPRINT), {
    error: (iss) => `must be a SHA-256 or SHA-1 certificate thumbprint in hex (got ${JSON.stringify(iss.input)})`,
  }).optional(),
  insecure: z.boolean().optional().describe('do not verify the server certificate at all'),
}).superRefine((c, ctx) => {
  if (c.passwordFile !== undefined && c.passwordEnv !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['passwordEnv'], message: 'give passwordFile or passwordEnv, not both' });
  } else if (c.passwordFile === undefined && c.passwordEnv === undefined) {
    ctx.addIssue({ code: 'custom', path: [], message: 'needs passwordFile or passwordEnv' });
  }
  if (c.thumbprint !== undefined && c.insecure === true) {
    ctx.addIssue({ code: 'custom', path: ['insecure'], message: 'thumbprint and insecure: true exclude each other' });
  }
}).meta({
  id: 'connection', // one definition in the JSON Schema for both kinds
  oneOf: [{ required: ['passwordFile'] }, { required: ['passwordEnv'] }],
  not: { required: ['thumbprint', 'insecure'], properties: { insecure: { const: true } } },
});
