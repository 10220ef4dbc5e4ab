#!/usr/bin/env node
// The `lorasmith` command line. Runs the TypeScript sources through tsx, so no build step is needed.
import './register-ts.js';

const { main } = await import('../main/cli/index.ts');
process.exitCode = await main(process.argv.slice(2));
