/** A StorageBackend that passes every call to another, except those a test replaces (to make storage fail on purpose). */
import type { StorageBackend } from '../src/storage/backend.js';

export function overrideBackend(inner: StorageBackend, overrides: Partial<Omit<StorageBackend, 'location'>>): StorageBackend {
  return {
    location: inner.location,
    put: (name, data, options) => inner.put(name, data, options),
    get: (name, range, into) => inner.get(name, range, into),
    stat: (name) => inner.stat(name),
    list: (prefix) => inner.list(prefix),
    remove: (name) => inner.remove(name),
    sweep: (age) => inner.sweep(age),
    ...overrides,
  };
}
