// `kiln serve`: the lab's own page, served from this machine, training here (an NVIDIA
// GPU through the CUDA addon, WebGPU through Dawn, or the CPU) through the same LabApi the browser's worker implements
// (DESIGN.md, "The lab and the runner share one API"). Runs go to --out as run folders
// that `kiln train` could have written.
//
// The lab served is the built one (dist/, what `npm run build` makes). It is not built
// on demand: Vite is a development dependency, a build takes a while and writes into the
// checkout, and a silent rebuild would hide which page is served; so a missing dist/ is
// an error that says how to build it, and one older than the sources gets a note.
//
// The token is printed once, inside the one URL on stdout (its fragment, which browsers
// never send); nothing else prints or logs it. Ctrl-C pauses the open run (its
// checkpoint is saved), closes the server and exits 130; a second Ctrl-C exits at once.
// A page that disconnects does not stop training.
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KilnError } from '../core/errors.ts';
import { printable } from '../core/text.ts';
import { startKilnServer, type KilnServer } from '../serve/http-server.ts';
import { createNodeLab, type ServeBackend } from '../serve/node-lab.ts';
import { LabRpc } from '../serve/rpc.ts';
import { parseBackendName } from './backends.ts';

export interface ServeFlags {
  port?: string;
  open?: boolean;
  out?: string;
  data?: string;
  backend?: string;
  'no-tensorboard'?: boolean;
}

/** The folder of the built lab to serve instead of the checkout's dist/ (tests build one elsewhere). */
export const LAB_DIR_ENV = 'KILN_LAB_DIR';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

function parsePort(s: string | undefined): number {
  if (s === undefined) return 0;
  if (!/^\d{1,5}$/.test(s) || Number(s) > 65535) throw new KilnError('usage', `--port ${printable(s, 20)}: a port is a whole number from 0 to 65535`, 'e.g. --port 8080, or leave it out for a free one');
  return Number(s);
}

function serveBackend(s: string | undefined): ServeBackend {
  return parseBackendName(s);
}

/** The newest modification time under `dir` (files whose names start with '.' skipped), or 0. */
function newestMtime(dir: string): number {
  let newest = 0;
  let entries: import('node:fs').Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    if (e.name.startsWith('.')) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestMtime(p));
    else if (e.isFile()) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

/** The built lab's folder: KILN_LAB_DIR, else dist/ of this checkout; refused when it holds no index.html. */
export function labDir(note: (line: string) => void): string {
  const given = process.env[LAB_DIR_ENV];
  const dir = given || join(REPO_ROOT, 'dist');
  let built: number;
  try {
    built = statSync(join(dir, 'index.html')).mtimeMs;
  } catch {
    if (given) throw new KilnError('usage', `${LAB_DIR_ENV}=${printable(given, 200)} holds no built lab (no index.html)`, `unset ${LAB_DIR_ENV} to serve the checkout's dist/, or build the lab there`);
    throw new KilnError('usage', 'the lab is not built: run `npm run build` first',
      `kiln serve serves the built lab from ${dir}; \`npm run build\` in ${REPO_ROOT.replace(/[\\/]$/, '')} makes it (again after updating Kiln)`);
  }
  if (!given) {
    const sources = Math.max(newestMtime(join(REPO_ROOT, 'src')), newestMtime(join(REPO_ROOT, 'shaders')));
    if (sources > built) note('kiln serve: note: the built lab (dist/) is older than the sources: run `npm run build` to serve the current one');
  }
  return dir;
}

/** Opens `url` in the default browser; a failure is a note, not an error (the URL is printed anyway). */
function openInBrowser(url: string, note: (line: string) => void): void {
  const [cmd, args] = process.platform === 'darwin' ? ['open', [url]] : process.platform === 'win32' ? ['cmd', ['/c', 'start', '""', url]] : ['xdg-open', [url]];
  const failed = (why: string) => note(`kiln serve: could not open a browser (${why}): open the URL above yourself`);
  try {
    const child = spawn(cmd as string, args as string[], { stdio: 'ignore', detached: true, windowsVerbatimArguments: true });
    child.on('error', (e: NodeJS.ErrnoException) => failed(`${cmd}: ${e.code ?? e.message}`));
    child.on('exit', (code) => {
      if (code) failed(`${cmd} exited with ${code}`);
    });
    child.unref();
  } catch (e) {
    failed((e as Error).message);
  }
}

export async function serveCommand(flags: ServeFlags): Promise<number> {
  const port = parsePort(flags.port);
  const backend = serveBackend(flags.backend);
  const out = flags.out ?? 'runs';
  const say = (line: string) => process.stderr.write(`${line}\n`);
  const root = labDir(say);
  const lab = await createNodeLab({ out, data: flags.data, backend, note: say, tensorboard: flags['no-tensorboard'] !== true });
  const { session } = lab;
  // Refusals and failures, one line each: http-server.ts and rpc.ts never put the token in one.
  const rpc = new LabRpc(session, { log: say });
  let pages = 0;
  let server: KilnServer;
  try {
    server = await startKilnServer({
      root,
      port,
      log: say,
      onConnection: (ws) => {
        const n = ++pages;
        say(`kiln serve: page ${n} connected`);
        rpc.attach(ws);
        ws.on('close', () => {
          void session.status().then(
            (s) => say(`kiln serve: page ${n} disconnected${s.phase === 'training' ? '; training goes on' : ''}`),
            () => say(`kiln serve: page ${n} disconnected`),
          );
        });
      },
    });
  } catch (e) {
    await lab.close();
    throw e;
  }
  say(`kiln serve: runs go to ${out}; Ctrl-C saves the open run and stops`);
  if (flags['no-tensorboard'] !== true) say(`kiln serve: each run's TensorBoard log is in its folder's tensorboard/: tensorboard --logdir ${out}`);
  // The one line with the token: stdout, so a script can read it and nothing logs it.
  process.stdout.write(`kiln serve: open ${server.url}\n`);
  if (flags.open) openInBrowser(server.url, say);

  const code = await new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: 'SIGINT' | 'SIGTERM') => {
      const exitCode = signal === 'SIGINT' ? 130 : 143;
      if (stopping) {
        say('kiln serve: quitting without waiting for the save');
        process.exit(exitCode);
      }
      stopping = true;
      say('\nkiln serve: stopping: saving the open run (Ctrl-C again to quit at once)');
      void (async () => {
        try {
          await session.pause();
          const st = await session.status();
          if (st.saveError) say(`kiln serve: warning: the last save failed: ${printable(st.saveError.message, 300)}`);
        } catch (e) {
          say(`kiln serve: warning: pausing failed: ${printable((e as Error)?.message ?? String(e), 300)}`);
        }
        rpc.close();
        await server.close().catch(() => {});
        const last = await lab.lastSaved().catch(() => null);
        await lab.close().catch((e: unknown) => say(`kiln serve: warning: ${printable((e as Error)?.message ?? String(e), 300)}`));
        say(last ? `kiln serve: stopped; the last run saved is ${join(last.folder, 'checkpoint.safetensors')} (step ${last.step})` : 'kiln serve: stopped');
        resolve(exitCode);
      })();
    };
    const onInt = () => stop('SIGINT');
    const onTerm = () => stop('SIGTERM');
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);
  });
  // Everything is closed; a native handle left open (Dawn's) must not keep the process.
  setTimeout(() => process.exit(code), 2000).unref();
  return code;
}
