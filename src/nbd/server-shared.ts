/** What the server's negotiation and transmission share: limits, the meta context id, the error that disconnects. */
import { NbdProtocolError } from './errors.js';

/** Largest READ or WRITE payload (the usual 32 MiB); larger reads get EOVERFLOW/EINVAL, larger writes a disconnect. */
export const MAX_PAYLOAD = 32 * 1024 * 1024;
export const BASE_ALLOCATION_ID = 1;
export const MAX_MESSAGE = 4096;

/** A client broke the protocol: it is disconnected. */
export class ProtocolViolation extends NbdProtocolError {}
