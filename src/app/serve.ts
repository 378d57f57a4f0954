/**
 * `serve`: one disk of a generation as an NBD export until stopped. The job and the
 * listener live below; the front ends reach them here.
 */
export { type ListenAddress, type ServerTls, loadServerTls, parseListenAddress } from '../nbd/server.js';
export { type ServingGeneration, serveGeneration } from '../jobs/serve-generation.js';
