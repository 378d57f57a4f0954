import { MemoryBackend } from '../src/storage/memory.js';
import { storageConformance } from './storage-conformance.js';

storageConformance('in memory', async () => ({ backend: new MemoryBackend(), cleanup: async () => {} }));
