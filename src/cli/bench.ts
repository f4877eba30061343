/** `kcm bench`: the end-to-end comparison that `npm run bench` runs (see `bench/e2e.ts`). */
export { benchCommand, benchUsage } from '../../bench/e2e.js';
