/**
 * `npm run train:starter`: builds resources/starter from scratch — corpus (Debian's public-domain KJV text),
 * byte-level BPE tokenizer, and a small Llama pretrained by the engine's own training loop with every weight
 * trainable (scripts/starter/pretrain.ts) — reproducibly from a seed.
 *
 *   npm run train:starter -- [--out resources/starter] [--corpus file.txt] [--seed 1234] [--steps 900]
 *                            [--minutes 35] [--batch 4] [--seq 256] [--lr 3e-3] [--weight-decay 0.1]
 *                            [--eval-every 50] [--backend wasm] [--threads 2]
 *
 * Without --corpus the text is built in .cache/starter by buildKjvCorpus (apt-get download + the package's own
 * `bible` program). The model is saved at every evaluation, so a run stopped early still leaves a model.
 */
import { register } from 'node:module';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    out: { type: 'string', default: 'resources/starter' },
    corpus: { type: 'string' },
    seed: { type: 'string', default: '1234' },
    steps: { type: 'string', default: '900' },
    minutes: { type: 'string', default: '35' },
    batch: { type: 'string', default: '4' },
    seq: { type: 'string', default: '256' },
    lr: { type: 'string', default: '3e-3' },
    'weight-decay': { type: 'string', default: '0.1' },
    'eval-every': { type: 'string', default: '50' },
    backend: { type: 'string', default: 'wasm' },
    threads: { type: 'string', default: '2' },
  },
});

// tfjs-core's gradient registrations are ESM with extensionless imports: plain Node (tsx) needs this resolve hook
// before the engine is imported (main/engine/backend/tfjs-esm-resolve.mjs says why).
register('../main/engine/backend/tfjs-esm-resolve.mjs', import.meta.url);
const { pretrainStarter } = await import('./starter/pretrain');

try {
  await pretrainStarter({
    outDir: args.out as string,
    corpus: args.corpus,
    seed: Number(args.seed),
    steps: Number(args.steps),
    minutes: Number(args.minutes),
    batch: Number(args.batch),
    seqLen: Number(args.seq),
    lr: Number(args.lr),
    weightDecay: Number(args['weight-decay']),
    evalEvery: Number(args['eval-every']),
    backend: args.backend as string,
    threads: Number(args.threads),
  });
} catch (error: unknown) {
  console.error(error);
  process.exit(1);
}
