/**
 * The config file's model (config.yaml): named vCenters and repositories, and which of
 * them apply when a command names none. Objects are strict, like recipes': a misspelt key
 * is an error with its line, not a setting silently ignored. The file holds where secrets
 * are (a file, a command), never a secret itself.
 */
import { z } from 'zod';
import { THUMBPRINT, vcenter as vcenterUrl } from '../providers/vsphere/recipe-connection.js';
import { show } from '../recipe/issues.js';
import { PROFILE_NAME, isProfileName } from '../recipe/profile-name.js';
import { retentionSchema } from '../recipe/schema.js';

const text = z.string().min(1);

export { PROFILE_NAME, isProfileName };

const NOT_A_NAME = 'letters, digits, "-" and "_" only (a name never holds ":", "/" or ".", which mark a URL or path)';

const profileName = z.string().regex(PROFILE_NAME, { error: (iss) => `${show(iss.input)} is not a profile name: ${NOT_A_NAME}` });

/** A string is run by /bin/sh; a list is a program and its arguments, run without a shell. */
const passwordCommand = z.union([text, z.array(text).min(1)], { error: 'must be a command string (run by /bin/sh) or a list of a program and its arguments (run without a shell)' });

export const vcenterProfileSchema = z.strictObject({
  url: vcenterUrl.describe('vCenter or ESXi: https://HOST[/sdk] or HOST'),
  user: text,
  passwordFile: text.optional().describe("a file whose first line is the user's password"),
  passwordCommand: passwordCommand.optional().describe("a command whose first line of output is the user's password"),
  thumbprint: z.string().regex(new RegExp(THUMBPRINT), {
    error: (iss) => `must be a SHA-256 or SHA-1 certificate thumbprint in hex (got ${show(iss.input)})`,
  }).optional(),
  caFile: text.optional().describe("PEM file of the CA(s) that signed the server's certificate (instead of the system's CAs)"),
  insecure: z.boolean().optional().describe('do not verify the server certificate at all'),
}).superRefine((c, ctx) => {
  if (c.passwordFile !== undefined && c.passwordCommand !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['passwordCommand'], message: 'give passwordFile or passwordCommand, not both' });
  }
  const trust = (['thumbprint', 'caFile', 'insecure'] as const).filter((k) => c[k] !== undefined && c[k] !== false);
  if (trust.length > 1) ctx.addIssue({ code: 'custom', path: [trust[1]!], message: `${trust.join(' and ')} exclude each other: give one way to trust the server` });
});

export const repositoryProfileSchema = z.strictObject({
  path: text.describe('a directory, or s3:https://HOST[:PORT]/BUCKET[/PREFIX]'),
  passwordFile: text.optional().describe('a file whose first line is the password of the (encrypted) repository'),
  passwordCommand: passwordCommand.optional().describe('a command whose first line of output is the password of the repository'),
  retention: z.record(z.string().min(1), retentionSchema).optional()
    .describe('prune --all: a retention policy per set, keyed by set name or glob ("web*", "*"); the first key that matches, in file order, wins'),
}).superRefine((r, ctx) => {
  if (r.passwordFile !== undefined && r.passwordCommand !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['passwordCommand'], message: 'give passwordFile or passwordCommand, not both' });
  }
});

export const configSchema = z.strictObject({
  // Names are checked below, not by the records' key schema: an issue there would lose its message.
  vcenters: z.record(z.string(), vcenterProfileSchema).default({}),
  repositories: z.record(z.string(), repositoryProfileSchema).default({}),
  defaults: z.strictObject({
    vcenter: profileName.optional().describe('the vCenter of a command that names none'),
    repository: profileName.optional().describe('the repository of a command that names none'),
  }).default({}),
}).superRefine((c, ctx) => {
  for (const kind of ['vcenters', 'repositories'] as const) {
    for (const name of Object.keys(c[kind])) {
      if (!isProfileName(name)) ctx.addIssue({ code: 'custom', path: [kind, name], message: `${JSON.stringify(name)} is not a profile name: ${NOT_A_NAME}` });
    }
  }
  for (const [key, names] of [['vcenter', c.vcenters], ['repository', c.repositories]] as const) {
    const name = c.defaults[key];
    if (name !== undefined && !Object.hasOwn(names, name)) {
      const known = Object.keys(names);
      ctx.addIssue({
        code: 'custom', path: ['defaults', key],
        message: `no ${key === 'vcenter' ? 'vCenter' : 'repository'} named ${JSON.stringify(name)} (${known.length ? `known: ${known.join(', ')}` : `${key === 'vcenter' ? 'vcenters' : 'repositories'} is empty`})`,
      });
    }
  }
});

export type VcenterProfile = z.output<typeof vcenterProfileSchema>;
export type RepositoryProfile = z.output<typeof repositoryProfileSchema>;
export type ConfigData = z.output<typeof configSchema>;
