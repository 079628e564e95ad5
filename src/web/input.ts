import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from '../shared/logger.js';

/**
 * What the web UI accepts from a request, in one place. Bad input is refused with a short 4xx
 * text before any handler runs, so a handler never sees an array where it expects a string, a
 * control character, or a megabyte of query. Two layers:
 *   - a gate on every request (also static files and unknown paths): URL length, repeated query
 *     parameters, control characters in the path or query;
 *   - a JSON schema per route (params, querystring, body): which parameters exist, their type,
 *     length and format. Unknown parameters are refused, not ignored (Ajv runs without coercion
 *     and without removing extra properties, see `AJV_OPTIONS`).
 */

/** Longer URLs are refused (Node itself refuses headers over 16 KiB with 431; `inject` does not). */
export const MAX_URL_LENGTH = 4096;

/** C0 controls, DEL and C1 controls: never part of a name, a date or a search. */
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

export const AJV_OPTIONS = { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } } as const;

/** Why a request is refused: a status and one line the auditor can act on (never echoes the input). */
export class BadInput extends Error {
  constructor(readonly statusCode: number, message: string) {
    super(message);
  }
}

export function badInput(message: string): BadInput {
  return new BadInput(400, message);
}

function checkRequest(req: FastifyRequest): BadInput | null {
  const url = req.raw.url ?? '';
  if (url.length > MAX_URL_LENGTH) return new BadInput(414, `URL too long (at most ${MAX_URL_LENGTH} characters)`);
  const query = (req.query ?? {}) as Record<string, unknown>;
  for (const [k, v] of Object.entries(query)) {
    if (CONTROL.test(k)) return badInput('control character in a parameter name');
    if (Array.isArray(v)) return badInput(`parameter "${k.slice(0, 32)}" given more than once`);
    if (typeof v === 'string' && CONTROL.test(v)) return badInput(`control character in parameter "${k.slice(0, 32)}"`);
  }
  for (const [k, v] of Object.entries((req.params ?? {}) as Record<string, unknown>)) {
    if (typeof v === 'string' && CONTROL.test(v)) return badInput(`control character in the path (${k})`);
  }
  // The path itself, decoded (a control character in a static file name or an unknown route).
  let path = url.split('?', 1)[0]!;
  try { path = decodeURIComponent(path); } catch { return badInput('malformed percent-encoding in the path'); }
  if (CONTROL.test(path)) return badInput('control character in the path');
  return null;
}

/** Errors the router raises before any hook (bad percent-encoding, an over-long path segment): the same short refusal, without echoing the URL. */
export function frameworkErrors(err: FastifyError, _req: FastifyRequest, reply: FastifyReply): void {
  const status = typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 400;
  const message = err.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 'a path segment is too long' : err.code === 'FST_ERR_BAD_URL' ? 'malformed URL' : 'bad request';
  void reply.code(status).type('text/plain; charset=utf-8').send(message);
}

/** The gate and the error handler: every refusal is a short text/plain 4xx; a 500 says nothing of the cause. */
export function registerInputGate(app: FastifyInstance, log: Logger): void {
  app.addHook('onRequest', async (req, reply) => {
    const bad = checkRequest(req);
    if (bad) return reply.code(bad.statusCode).type('text/plain; charset=utf-8').send(bad.message);
  });
  app.setErrorHandler((err: FastifyError, req, reply: FastifyReply) => {
    const status = err.validation ? 400 : typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (status === 500) log.error({ err, method: req.method, route: req.routeOptions.url }, 'web request failed');
    const message = status === 500 ? 'internal error' : err.validation ? `bad request: ${err.message}` : err.message;
    return reply.code(status).type('text/plain; charset=utf-8').send(message);
  });
}

// Schema pieces. Strings only (no coercion): a repeated parameter is an array and fails `type`.
type Schema = Record<string, unknown>;
export const text = (maxLength: number): Schema => ({ type: 'string', maxLength });
export const digits = (max: number): Schema => ({ type: 'string', pattern: `^[0-9]{0,${max}}$` });
export const oneOf = (values: readonly string[]): Schema => ({ type: 'string', enum: [...values] });
export const matching = (re: RegExp, maxLength: number): Schema => ({ type: 'string', pattern: re.source, maxLength });

/** An object schema that refuses parameters it does not name. */
export function only(properties: Record<string, Schema> = {}, required: string[] = []): Schema {
  return { type: 'object', properties, required, additionalProperties: false };
}

/** Session ids as `ids.sessionId()` makes them (and older test ids): safe in paths and URLs. */
export const SESSION_ID = matching(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 64);
/** User names, as `checkName` accepts them. */
export const USER_NAME = matching(/^[a-z0-9][a-z0-9._-]*$/, 64);
/** A date filter: validated again by `parseIsoTime`, which names what is wrong. */
export const DATE = text(64);
