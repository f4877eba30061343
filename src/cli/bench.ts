/** `kcm bench`: see `bench/command.ts`. */
export { benchCommand, benchUsage } from './bench/command.js';
