/** Serving the built renderer for the UI tests, and where their screenshots go. */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { extname, join, normalize } from 'node:path';
import { expect, test, type Page } from '@playwright/test';
import { CONTENT_SECURITY_POLICY } from '../../main/app/security';

const root = join(import.meta.dirname, '../../out/renderer');
const types: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml' };

export const SCREENSHOTS = join(import.meta.dirname, '../../test-results/ui');

/** The built renderer as plain files, under the CSP the app sends with every page (main/app/security.ts): the tests see what users see. */
export async function serveRenderer(): Promise<{ server: Server; url: string }> {
  const server = createServer(async (req, res) => {
    const path = normalize(join(root, (req.url ?? '/').split('?')[0] === '/' ? 'index.html' : (req.url ?? '').split('?')[0]!));
    if (!path.startsWith(root)) return void res.writeHead(403).end();
    try {
      const body = await readFile(path);
      res.writeHead(200, { 'content-type': types[extname(path)] ?? 'application/octet-stream', 'content-security-policy': CONTENT_SECURITY_POLICY }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (typeof address !== 'object' || address === null) throw new Error('no server address');
  return { server, url: `http://127.0.0.1:${address.port}/` };
}

/** Console errors and CSP violations: a UI test fails on any. */
export function collectErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(message.text());
  });
  return errors;
}

export async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: false });
}

/** A running `lorasmith serve` (the real main side) on a data folder of the test's own. */
export interface ServeProcess {
  readonly child: import('node:child_process').ChildProcess;
  /** The address it printed, with its token. */
  readonly url: string;
  /** What it printed up to the address. */
  readonly output: string;
}

async function startServe(dataDir: string, env: NodeJS.ProcessEnv = process.env): Promise<ServeProcess> {
  const { spawn } = await import('node:child_process');
  const repo = join(import.meta.dirname, '../..');
  const child = spawn(process.execPath, [join(repo, 'bin/lorasmith.js'), 'serve', '--port', '0', '--data-dir', dataDir], {
    cwd: repo, stdio: ['ignore', 'pipe', 'pipe'], env,
  });
  return new Promise<ServeProcess>((resolve, reject) => {
    let output = '';
    // Generous on a loaded machine (it starts through tsx), within servedLibrary's 180 s for its beforeAll.
    const timer = setTimeout(() => reject(new Error(`serve printed no address in 150 s:\n${output}`)), 150_000);
    const read = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /https?:\/\/127\.0\.0\.1:\d+\/\S*/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve({ child, url: match[0], output });
      }
    };
    child.stdout.on('data', read);
    child.stderr.on('data', read);
    child.on('exit', (code) => reject(new Error(`serve exited with ${code}:\n${output}`)));
  });
}

/** Opens one of the app's sections ('Library', 'Fine-tune', 'Chat', ...) from its navigation. */
export async function openSection(page: Page, name: string): Promise<void> {
  // Training's button also counts the runs under way ("Training 1 running").
  const label = new RegExp(`^${name}(?: \\d+ running)?$`);
  await page.getByRole('navigation', { name: 'Sections' }).getByRole('button', { name: label }).click();
}

/** What a wizard walk chooses: radios by name, all linear layers where asked, the rank, then fields by label in order. */
export interface WizardChoices {
  readonly model: RegExp;
  readonly dataset: RegExp;
  readonly allLinear?: boolean;
  readonly rank?: string;
  /** The training page's fields: label → value, filled in this order. */
  readonly fields: Readonly<Record<string, string>>;
}

/** Walks the Fine-tune wizard from its first page to the review (whose estimate the caller awaits). */
export async function wizardToReview(page: Page, choices: WizardChoices): Promise<void> {
  const next = () => page.getByRole('button', { name: 'Next' }).click();
  await openSection(page, 'Fine-tune');
  await page.getByRole('radio', { name: choices.model }).check();
  await next();
  await page.getByRole('radio', { name: choices.dataset }).check();
  await next();
  if (choices.allLinear) await page.getByRole('button', { name: 'All linear' }).click();
  await next();
  if (choices.rank !== undefined) await page.getByLabel('Rank r').fill(choices.rank);
  await next();
  for (const [label, value] of Object.entries(choices.fields)) await page.getByLabel(label).fill(value);
  await next();
}

/** Sends one message in the chat and waits until every set-up has answered; the replies' texts in set-up order. */
export async function sendAndWait(page: Page, message: string, setups: number, maxNewTokens = 16): Promise<string[]> {
  const log = page.getByRole('log', { name: 'Conversation' });
  const before = await log.getByRole('article').count();
  if (!(await page.getByLabel('Temperature').isVisible())) await page.getByText(/Sampling/).click();
  await page.getByLabel('Temperature').fill('0');
  await page.getByLabel('Max new tokens').fill(String(maxNewTokens));
  await page.getByLabel('Message').fill(message);
  await page.getByRole('button', { name: 'Send' }).click();
  const replies = log.getByRole('article');
  await expect(replies).toHaveCount(before + setups);
  for (let i = before; i < before + setups; i++) await expect(replies.nth(i)).toHaveAttribute('aria-busy', 'false', { timeout: 120_000 });
  return (await replies.locator('.text').allTextContents()).slice(before).map((t) => t.trim());
}

/** What servedLibrary gives a spec once its beforeAll has run. */
export interface ServedLibrary {
  /** The spec's temp folder: the library is in data/, the spec's own files go beside it. */
  readonly home: string;
  /** The address `lorasmith serve` printed, with its token. */
  readonly url: string;
  /** What it printed up to the address. */
  readonly output: string;
  /** Stops the server before the spec ends (to see what the page does when it goes away). */
  stop(): void;
}

/**
 * A `lorasmith serve` on a temp folder of the spec's own, for all its tests: before them, `prepare` writes what the
 * spec needs into the folder and returns the server's environment (the test's own where it returns nothing), then
 * the server starts on its data/; after them the server stops and the folder goes.
 */
export function servedLibrary(name: string, prepare: (home: string) => NodeJS.ProcessEnv | void | Promise<NodeJS.ProcessEnv | void> = () => undefined): ServedLibrary {
  let home = '';
  let serve: ServeProcess | undefined;
  test.beforeAll(async () => {
    test.setTimeout(180_000);
    home = mkdtempSync(join(tmpdir(), `lorasmith-${name}-`));
    serve = await startServe(join(home, 'data'), (await prepare(home)) ?? process.env);
  });
  test.afterAll(async () => {
    const child = serve?.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 10_000))]);
    }
    if (home) rmSync(home, { recursive: true, force: true });
  });
  const started = (): ServeProcess => {
    if (!serve) throw new Error(`lorasmith serve for ${name} has not started (servedLibrary's beforeAll did not run)`);
    return serve;
  };
  return {
    get home() {
      return home;
    },
    get url() {
      return started().url;
    },
    get output() {
      return started().output;
    },
    stop() {
      started().child.kill('SIGTERM');
    },
  };
}
