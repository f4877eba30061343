export { KcmError, errnos, errnoName } from './errors.js';
export type { ErrnoName } from './errors.js';
export type { Parser } from './parsers/parser.js';
export { loadBpf } from './bpf/load-bpf.js';
export type { LoadBpfOptions } from './bpf/load-bpf.js';
export { lengthField } from './parsers/length-field.js';
export type { LengthFieldSpec } from './parsers/length-field.js';
