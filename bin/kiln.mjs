#!/usr/bin/env node
// The `kiln` command runs the TypeScript sources directly through tsx, so `npm ci`
// is the only set-up step (no build, no install scripts).
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
