import { randomBytes } from 'node:crypto';

/** Identifiers that end up in file paths are made here, from random bytes only (never from user input). */
export interface Ids {
  sessionId(): string;
}

export const randomIds: Ids = {
  // Time-ordered prefix keeps directory listings and `ls` sorted by start; the suffix makes it unguessable.
  sessionId: () => `${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`,
};
