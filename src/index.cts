/**
 * The CommonJS entry of the package: `require('kcm')` returns the same module object as
 * `import('kcm')` (one copy of every class, so `instanceof` holds across both). Node
 * 20.19+ and 22.12+ load an ES module synchronously from `require()`; older releases
 * get an error saying so.
 */
let kcm: typeof import('./index.js');
try {
  kcm = require('./index.js') as typeof import('./index.js');
} catch (err) {
  if ((err as { code?: string }).code !== 'ERR_REQUIRE_ESM') throw err;
  throw new Error(`require('kcm') needs Node.js 20.19+ or 22.12+ (this is ${process.version}); use import('kcm') instead`, { cause: err });
}
export = kcm;
