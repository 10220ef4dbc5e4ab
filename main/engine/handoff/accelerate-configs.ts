/**
 * accelerate launch configs of an exported run (one GPU, DDP, DeepSpeed ZeRO-2 / ZeRO-3, FSDP) in the layout
 * `accelerate config` writes, and the DeepSpeed JSON configs they point at. Precision stays float32 ('no'), as the
 * engine trains; gradient accumulation stays 1 because train.py composes each step itself (see its docstring).
 */
import type { TrainSettings } from '../train/settings';

type YamlValue = string | number | boolean | null | readonly never[] | { readonly [key: string]: YamlValue };

/** Block-style YAML of plain maps; every string single-quoted (so 'NO' stays a string, not YAML 1.1's false). */
export function toYaml(value: { readonly [key: string]: YamlValue }, indent = ''): string {
  return Object.entries(value)
    .map(([key, v]) => {
      if (v !== null && typeof v === 'object' && !Array.isArray(v)) return `${indent}${key}:\n${toYaml(v as { [key: string]: YamlValue }, indent + '  ')}`;
      const text = Array.isArray(v) ? '[]' : typeof v === 'string' ? `'${v.replace(/'/g, "''")}'` : String(v);
      return `${indent}${key}: ${text}\n`;
    })
    .join('');
}

const COMMON = {
  compute_environment: 'LOCAL_MACHINE',
  machine_rank: 0,
  main_training_function: 'main',
  num_machines: 1,
  rdzv_backend: 'static',
  same_network: true,
  tpu_env: [],
  tpu_use_cluster: false,
  tpu_use_sudo: false,
  use_cpu: false,
} as const;

export interface BundleFiles {
  /** Relative path -> text. */
  readonly [path: string]: string;
}

function deepspeedJson(stage: 2 | 3, settings: TrainSettings): string {
  const zero = stage === 2
    ? { stage: 2, overlap_comm: true, contiguous_gradients: true, reduce_bucket_size: 5e8, allgather_bucket_size: 5e8 }
    : { stage: 3, overlap_comm: true, contiguous_gradients: true, stage3_gather_16bit_weights_on_model_save: true };
  return JSON.stringify({
    zero_optimization: zero,
    // train.py runs one forward / backward per step and process; DeepSpeed clips as the run does.
    gradient_accumulation_steps: 1,
    gradient_clipping: settings.maxGradNorm,
    train_micro_batch_size_per_gpu: settings.batchSize,
    bf16: { enabled: false },
    fp16: { enabled: false },
    steps_per_print: 1000000,
    wall_clock_breakdown: false,
  }, null, 2) + '\n';
}

/** The accelerate/ and deepspeed/ files of a bundle. */
export function accelerateConfigFiles(settings: TrainSettings): BundleFiles {
  return {
    'accelerate/single_gpu.yaml': toYaml({ ...COMMON, distributed_type: 'NO', downcast_bf16: 'no', gpu_ids: '0', mixed_precision: 'no', num_processes: 1 }),
    'accelerate/ddp.yaml': toYaml({ ...COMMON, distributed_type: 'MULTI_GPU', downcast_bf16: 'no', gpu_ids: 'all', mixed_precision: 'no', num_processes: 2 }),
    'accelerate/deepspeed_zero2.yaml': toYaml({
      ...COMMON, distributed_type: 'DEEPSPEED', num_processes: 2,
      deepspeed_config: { deepspeed_config_file: 'deepspeed/zero2.json', zero3_init_flag: false },
    }),
    'accelerate/deepspeed_zero3.yaml': toYaml({
      ...COMMON, distributed_type: 'DEEPSPEED', num_processes: 2,
      deepspeed_config: { deepspeed_config_file: 'deepspeed/zero3.json', zero3_init_flag: true },
    }),
    'accelerate/fsdp.yaml': toYaml({
      ...COMMON, distributed_type: 'FSDP', downcast_bf16: 'no', mixed_precision: 'no', num_processes: 2,
      fsdp_config: {
        // The decoder layer class comes from the model's _no_split_modules; use_orig_params lets frozen and
        // trained weights share a wrapped unit (LoRA); a full state dict is what PEFT saves.
        fsdp_auto_wrap_policy: 'TRANSFORMER_BASED_WRAP',
        fsdp_backward_prefetch: 'BACKWARD_PRE',
        fsdp_cpu_ram_efficient_loading: true,
        fsdp_forward_prefetch: false,
        fsdp_offload_params: false,
        fsdp_sharding_strategy: 'FULL_SHARD',
        fsdp_state_dict_type: 'FULL_STATE_DICT',
        fsdp_sync_module_states: true,
        fsdp_use_orig_params: true,
        fsdp_version: 1,
      },
    }),
    'deepspeed/zero2.json': deepspeedJson(2, settings),
    'deepspeed/zero3.json': deepspeedJson(3, settings),
  };
}
