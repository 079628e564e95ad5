/** This release (audited at server start, written into backups). */
export const VERSION = '0.1.0';
