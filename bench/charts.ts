// The lab's charts under a long run: 100k metrics rows streamed into the loss chart and
// the small charts, 500 rows per animation frame, in headless Chromium; prints one JSON
// line with the main thread's long tasks (the lab's goal: none over 200 ms).
//   npx tsx bench/charts.ts [--rows 100000] [--chunk 500]
import { openBrowser, recordLongTasks, startDevServer } from '../tests/helpers/browser.ts';

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const server = await startDevServer();
const b = await openBrowser({ width: 1280, height: 800 });
try {
  await recordLongTasks(b.page);
  await b.page.goto(`${server.url}bench/pages/charts.html?rows=${flag('rows') ?? 100000}&chunk=${flag('chunk') ?? 500}`);
  await b.page.waitForFunction(() => (window as unknown as { __chartBench?: unknown }).__chartBench !== undefined, null, { timeout: 600_000 });
  const r = await b.page.evaluate(() => (window as unknown as { __chartBench: Record<string, number> }).__chartBench);
  if (b.problems.length) throw new Error(`the page logged errors${b.report()}`);
  process.stdout.write(JSON.stringify({ bench: 'charts', ...r, longestMs: Math.round(r.longestMs), ms: Math.round(r.ms), browser: b.browser.version() }) + '\n');
} finally {
  await b.close();
  await server.close();
}
