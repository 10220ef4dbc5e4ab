// Node ESM resolve hook for running the TypeScript sources directly (tsx: the CLI, scripts).
// tfjs-core's ESM files import extensionless paths ('../ops/mul', './gradients'), which bundlers and vitest
// resolve but Node does not; the gradient registrations (dist/register_all_gradients.js) are only published
// that way. Inside @tensorflow packages, retry a failed relative import with '.js' appended.
// Register it with module.register() after tsx's register(), before importing the engine.
export async function resolve(specifier, context, next) {
  try {
    return await next(specifier, context);
  } catch (error) {
    const fixable = error?.code === 'ERR_UNSUPPORTED_DIR_IMPORT' || error?.code === 'ERR_MODULE_NOT_FOUND';
    if (fixable && specifier.startsWith('.') && !specifier.endsWith('.js') && context.parentURL?.includes('/@tensorflow/')) {
      return next(`${specifier}.js`, context);
    }
    throw error;
  }
}
