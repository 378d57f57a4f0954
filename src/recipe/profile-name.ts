/**
 * A profile's name (a vCenter or repository of the config file): a bare word, so that a
 * name is never mistaken for a URL, host or path, which always hold ":", "/" or ".". The
 * command line, the environment and recipes all tell the two apart by this rule.
 */
export const PROFILE_NAME = /^[A-Za-z0-9_-]+$/;

export function isProfileName(value: string): boolean {
  return PROFILE_NAME.test(value);
}
