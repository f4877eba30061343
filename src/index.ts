export { KcmError, errnos, errnoName } from './errors.js';
export type { ErrnoName } from './errors.js';
export type { Parser } from './parsers/parser.js';
