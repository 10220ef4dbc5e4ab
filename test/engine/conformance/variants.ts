/**
 * The backend variants the conformance suite runs on: one parameterised suite, every variant. To add a variant
 * (a backend, or a backend with other kernels registered: fused WGSL kernels, say), add an entry to VARIANTS;
 * every conformance file picks it up.
 *
 * A variant that cannot run here is reported as such, with its reason, in the skipped block's name. Where it is
 * required (CI sets LORASMITH_REQUIRE_WEBGPU=1; the native addon is required wherever BLAS is installed) a
 * missing variant is a failing test instead.
 */
import { afterAll, beforeAll, describe, it } from 'vitest';
import { initBackend, type BackendInfo, type BackendName, type InitBackendOptions } from '../../../main/engine/backend/index';
import { nativeKernelStatus } from '../../../main/engine/backend/native/index';
import { addonRequired } from '../backend/native-support';

export interface Variant {
  /** Shown in test names: 'wasm', 'cpu+native', 'webgpu'. */
  readonly id: string;
  readonly backend: BackendName;
  readonly options: InitBackendOptions;
  /** True where this variant must run (a missing one fails). */
  readonly required: boolean;
  /** Checked after initialisation: null when the variant is what it claims, else why not. */
  readonly verify?: (info: BackendInfo) => string | null;
}

const plain: InitBackendOptions = { native: { disabled: true } };
const native: InitBackendOptions = { native: {} };
const nativeActive = (info: BackendInfo): string | null => {
  if (info.name !== 'wasm' && info.name !== 'cpu') return null;
  const status = nativeKernelStatus(info.name);
  return status.active ? null : status.detail;
};

export const VARIANTS: readonly Variant[] = [
  { id: 'cpu', backend: 'cpu', options: plain, required: true },
  { id: 'cpu+native', backend: 'cpu', options: native, required: addonRequired, verify: nativeActive },
  { id: 'wasm', backend: 'wasm', options: plain, required: true },
  { id: 'wasm+native', backend: 'wasm', options: native, required: addonRequired, verify: nativeActive },
  { id: 'webgpu', backend: 'webgpu', options: {}, required: process.env.LORASMITH_REQUIRE_WEBGPU === '1' },
  // libtensorflow (tfjs-node / tfjs-node-gpu) where it installs; optional everywhere.
  { id: 'tensorflow', backend: 'tensorflow', options: {}, required: false },
];

/** Makes the variant's backend active (and its kernels registered); throws with the reason when it cannot. */
export async function activate(variant: Variant): Promise<BackendInfo> {
  const info = await initBackend(variant.backend, variant.options);
  const problem = variant.verify?.(info) ?? null;
  if (problem !== null) throw new Error(problem);
  return info;
}

/** Whether each variant can run here, found once per test file (top-level await). */
async function probeAll(): Promise<Map<string, { usable: boolean; reason: string }>> {
  const out = new Map<string, { usable: boolean; reason: string }>();
  for (const variant of VARIANTS) {
    try {
      const info = await activate(variant);
      out.set(variant.id, { usable: true, reason: info.available.find((a) => a.name === info.name)?.detail ?? info.name });
    } catch (error) {
      out.set(variant.id, { usable: false, reason: (error instanceof Error ? error.message : String(error)).split('\n')[0] ?? '' });
    }
  }
  await initBackend('cpu', plain);
  return out;
}

const availability = await probeAll();

/**
 * describe() once per variant. Inside, the variant's backend is active (set in a beforeAll, so blocks run one
 * variant at a time). An unavailable variant shows as a skipped block naming why, or fails where required.
 */
export function forEachVariant(title: string, body: (variant: Variant) => void, filter: (v: Variant) => boolean = () => true): void {
  for (const variant of VARIANTS.filter(filter)) {
    const found = availability.get(variant.id) ?? { usable: false, reason: 'not probed' };
    if (!found.usable) {
      if (variant.required) {
        describe(`${title} [${variant.id}]`, () => {
          it('is available (required here)', () => {
            throw new Error(`${variant.id} is required here but not usable: ${found.reason}`);
          });
        });
      } else {
        describe.skip(`${title} [${variant.id}: not available here: ${found.reason}]`, () => {
          it('not available', () => undefined);
        });
      }
      continue;
    }
    describe(`${title} [${variant.id}]`, () => {
      beforeAllActivate(variant);
      body(variant);
    });
  }
}

function beforeAllActivate(variant: Variant): void {
  beforeAll(async () => {
    await activate(variant);
  });
  afterAll(async () => {
    await initBackend('cpu', plain);
  });
}
