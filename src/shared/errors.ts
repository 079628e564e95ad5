/**
 * Coded errors at the edges: the code is stable (tests and scripts match on it), the message is one
 * line a person can act on, the hint says what to do next. Never put a secret in either.
 */
export type ErrorCode =
  | 'GH_USAGE'
  | 'GH_CONFIG'
  | 'GH_DATADIR'
  | 'GH_NOT_FOUND'
  | 'GH_EXISTS'
  | 'GH_INVALID'
  | 'GH_WEAK_KEY'
  | 'GH_STORE'
  | 'GH_DENIED'
  | 'GH_RUNTIME';

export class GatehouseError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  /** Process exit status when this error ends a command: 2 for usage errors, 1 otherwise. */
  readonly exitCode: number;

  constructor(code: ErrorCode, message: string, opts: { hint?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'GatehouseError';
    this.code = code;
    this.hint = opts.hint;
    this.exitCode = code === 'GH_USAGE' ? 2 : 1;
  }
}

export const usageError = (message: string, hint?: string) =>
  new GatehouseError('GH_USAGE', message, hint === undefined ? {} : { hint });
export const notFound = (message: string, hint?: string) =>
  new GatehouseError('GH_NOT_FOUND', message, hint === undefined ? {} : { hint });
export const alreadyExists = (message: string, hint?: string) =>
  new GatehouseError('GH_EXISTS', message, hint === undefined ? {} : { hint });
export const invalid = (message: string, hint?: string) =>
  new GatehouseError('GH_INVALID', message, hint === undefined ? {} : { hint });
