/** Numbers of the NBD protocol (NetworkBlockDevice/nbd doc/proto.md). */

export const NBDMAGIC = 0x4e42444d41474943n;
export const IHAVEOPT = 0x49484156454f5054n;
export const OPTION_REPLY_MAGIC = 0x3e889045565a9n;
export const REQUEST_MAGIC = 0x25609513;
export const SIMPLE_REPLY_MAGIC = 0x67446698;
export const STRUCTURED_REPLY_MAGIC = 0x668e33ef;

export const HandshakeFlag = { FIXED_NEWSTYLE: 1, NO_ZEROES: 2 } as const;

export const Opt = {
  EXPORT_NAME: 1, ABORT: 2, LIST: 3, STARTTLS: 5, INFO: 6, GO: 7, STRUCTURED_REPLY: 8, LIST_META_CONTEXT: 9, SET_META_CONTEXT: 10,
} as const;

export const Rep = { ACK: 1, SERVER: 2, INFO: 3, META_CONTEXT: 4 } as const;
/** Option reply errors have bit 31 set. */
export const REP_ERROR_BIT = 0x80000000;
export const RepError: Record<number, string> = {
  1: 'NBD_REP_ERR_UNSUP', 2: 'NBD_REP_ERR_POLICY', 3: 'NBD_REP_ERR_INVALID', 4: 'NBD_REP_ERR_PLATFORM',
  5: 'NBD_REP_ERR_TLS_REQD', 6: 'NBD_REP_ERR_UNKNOWN', 7: 'NBD_REP_ERR_SHUTDOWN', 8: 'NBD_REP_ERR_BLOCK_SIZE_REQD', 9: 'NBD_REP_ERR_TOO_BIG',
};

/** Option reply error types by name (REP_ERROR_BIT is added when sent). */
export const RepErrorCode = {
  UNSUP: 1, POLICY: 2, INVALID: 3, PLATFORM: 4, TLS_REQD: 5, UNKNOWN: 6, SHUTDOWN: 7, BLOCK_SIZE_REQD: 8, TOO_BIG: 9,
} as const;

export const Info = { EXPORT: 0, NAME: 1, DESCRIPTION: 2, BLOCK_SIZE: 3 } as const;

export const TransmissionFlag = {
  HAS_FLAGS: 1, READ_ONLY: 2, SEND_FLUSH: 4, SEND_FUA: 8, ROTATIONAL: 16, SEND_TRIM: 32, SEND_WRITE_ZEROES: 64,
  SEND_DF: 128, CAN_MULTI_CONN: 256, SEND_RESIZE: 512, SEND_CACHE: 1024, SEND_FAST_ZERO: 2048,
} as const;

export const Cmd = { READ: 0, WRITE: 1, DISC: 2, FLUSH: 3, TRIM: 4, CACHE: 5, WRITE_ZEROES: 6, BLOCK_STATUS: 7 } as const;
export const CmdFlag = { FUA: 1, NO_HOLE: 2, DF: 4, REQ_ONE: 8, FAST_ZERO: 16 } as const;

export const ReplyFlag = { DONE: 1 } as const;
export const ReplyType = { NONE: 0, OFFSET_DATA: 1, OFFSET_HOLE: 2, BLOCK_STATUS: 5, ERROR: 32769, ERROR_OFFSET: 32770 } as const;

/** Transmission error numbers and their names. */
export const Errno: Record<number, string> = {
  1: 'EPERM', 5: 'EIO', 12: 'ENOMEM', 22: 'EINVAL', 28: 'ENOSPC', 75: 'EOVERFLOW', 95: 'ENOTSUP', 108: 'ESHUTDOWN',
};

/** Transmission error numbers by name. */
export const ErrnoCode = { EPERM: 1, EIO: 5, ENOMEM: 12, EINVAL: 22, ENOSPC: 28, EOVERFLOW: 75, ENOTSUP: 95, ESHUTDOWN: 108 } as const;

/** base:allocation descriptor flags. */
export const StateFlag = { HOLE: 1, ZERO: 2 } as const;
