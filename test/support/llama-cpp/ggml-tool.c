/*
 * Test-only bridge to llama.cpp's own code, linked against the prebuilt libllama / libggml that node-llama-cpp
 * ships: the project's GGUF reader, writer and (de)quantizers are checked against these results. Commands:
 *
 *   types                                     id, name, block size, type size of every ggml type
 *   dequant <type> <in> <out.f32> <n>         ggml's to_float for <type> over n values
 *   quant <type> <in.f32> <out> <rows> <cols> ggml_quantize_chunk (the reference quantizers)
 *   f16 <in.f32> <out> <n> / bf16 ...         ggml's float32 -> half / bfloat16 row conversions
 *   model-quantize <in.gguf> <out.gguf> <ftype> [pure]   llama_model_quantize, as the llama-quantize tool does
 *                                             (pure: every tensor at the ftype's type, as llama-quantize --pure)
 *   dump <file.gguf>                          ggml's own GGUF parser: metadata and tensor infos as JSON lines
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <inttypes.h>
#include "llama.h"
#include "gguf.h"

static void *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); exit(2); }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc(n > 0 ? (size_t)n : 1);
    if (n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n) { perror(path); exit(2); }
    fclose(f);
    *size = (size_t)n;
    return buf;
}

static void write_file(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size) { perror(path); exit(2); }
    fclose(f);
}

static void json_string(const char *s) {
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') printf("\\%c", *p);
        else if (*p < 0x20) printf("\\u%04x", *p);
        else putchar(*p);
    }
    putchar('"');
}

static size_t scalar_size(enum gguf_type type) {
    switch (type) {
        case GGUF_TYPE_UINT8: case GGUF_TYPE_INT8: case GGUF_TYPE_BOOL: return 1;
        case GGUF_TYPE_UINT16: case GGUF_TYPE_INT16: return 2;
        case GGUF_TYPE_UINT32: case GGUF_TYPE_INT32: case GGUF_TYPE_FLOAT32: return 4;
        default: return 8;
    }
}

static void dump_scalar(enum gguf_type type, const void *data) {
    switch (type) {
        case GGUF_TYPE_UINT8:   printf("%u", *(const uint8_t *)data); break;
        case GGUF_TYPE_INT8:    printf("%d", *(const int8_t *)data); break;
        case GGUF_TYPE_UINT16:  printf("%u", *(const uint16_t *)data); break;
        case GGUF_TYPE_INT16:   printf("%d", *(const int16_t *)data); break;
        case GGUF_TYPE_UINT32:  printf("%u", *(const uint32_t *)data); break;
        case GGUF_TYPE_INT32:   printf("%d", *(const int32_t *)data); break;
        case GGUF_TYPE_FLOAT32: printf("%.9g", *(const float *)data); break;
        case GGUF_TYPE_BOOL:    printf("%s", *(const int8_t *)data ? "true" : "false"); break;
        case GGUF_TYPE_UINT64:  printf("%" PRIu64, *(const uint64_t *)data); break;
        case GGUF_TYPE_INT64:   printf("%" PRId64, *(const int64_t *)data); break;
        case GGUF_TYPE_FLOAT64: printf("%.17g", *(const double *)data); break;
        default: printf("null");
    }
}

static int dump(const char *path) {
    struct gguf_init_params params = { .no_alloc = true, .ctx = NULL };
    struct gguf_context *ctx = gguf_init_from_file(path, params);
    if (!ctx) { fprintf(stderr, "ggml could not read %s\n", path); return 1; }
    printf("{\"version\":%u,\"alignment\":%zu,\"data_offset\":%zu}\n", gguf_get_version(ctx), gguf_get_alignment(ctx), gguf_get_data_offset(ctx));
    for (int64_t i = 0; i < gguf_get_n_kv(ctx); i++) {
        enum gguf_type type = gguf_get_kv_type(ctx, i);
        printf("{\"key\":");
        json_string(gguf_get_key(ctx, i));
        printf(",\"type\":%d,\"value\":", type);
        if (type == GGUF_TYPE_STRING) json_string(gguf_get_val_str(ctx, i));
        else if (type == GGUF_TYPE_ARRAY) {
            enum gguf_type item = gguf_get_arr_type(ctx, i);
            size_t n = gguf_get_arr_n(ctx, i);
            printf("[");
            for (size_t j = 0; j < n; j++) {
                if (j) putchar(',');
                if (item == GGUF_TYPE_STRING) json_string(gguf_get_arr_str(ctx, i, j));
                else dump_scalar(item, (const char *)gguf_get_arr_data(ctx, i) + j * scalar_size(item));
            }
            printf("],\"item_type\":%d", item);
        } else dump_scalar(type, gguf_get_val_data(ctx, i));
        printf("}\n");
    }
    for (int64_t i = 0; i < gguf_get_n_tensors(ctx); i++) {
        printf("{\"tensor\":");
        json_string(gguf_get_tensor_name(ctx, i));
        printf(",\"type\":%d,\"offset\":%zu,\"size\":%zu}\n", gguf_get_tensor_type(ctx, i), gguf_get_tensor_offset(ctx, i), gguf_get_tensor_size(ctx, i));
    }
    gguf_free(ctx);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: ggml-tool <command> ...\n"); return 2; }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "types")) {
        for (int t = 0; t < GGML_TYPE_COUNT; t++) {
            const struct ggml_type_traits *tr = ggml_get_type_traits((enum ggml_type)t);
            if (!tr->type_name || tr->blck_size == 0) continue;
            printf("%d %s %" PRId64 " %zu %d\n", t, tr->type_name, tr->blck_size, tr->type_size, tr->to_float != NULL);
        }
        return 0;
    }
    if (!strcmp(cmd, "dequant") && argc == 6) {
        const struct ggml_type_traits *tr = ggml_get_type_traits((enum ggml_type)atoi(argv[2]));
        size_t size;
        void *in = read_file(argv[3], &size);
        int64_t n = atoll(argv[5]);
        float *out = malloc(n * sizeof(float));
        if (atoi(argv[2]) == GGML_TYPE_F32) memcpy(out, in, n * sizeof(float));
        else if (!tr->to_float) { fprintf(stderr, "no to_float\n"); return 1; }
        else tr->to_float(in, out, n);
        write_file(argv[4], out, n * sizeof(float));
        return 0;
    }
    if (!strcmp(cmd, "quant") && argc == 7) {
        enum ggml_type type = (enum ggml_type)atoi(argv[2]);
        size_t size;
        float *in = read_file(argv[3], &size);
        int64_t rows = atoll(argv[5]), cols = atoll(argv[6]);
        size_t bytes = ggml_row_size(type, cols) * rows;
        void *out = malloc(bytes);
        size_t done = ggml_quantize_chunk(type, in, out, 0, rows, cols, NULL);
        write_file(argv[4], out, done);
        return 0;
    }
    if ((!strcmp(cmd, "f16") || !strcmp(cmd, "bf16")) && argc == 5) {
        size_t size;
        float *in = read_file(argv[2], &size);
        int64_t n = atoll(argv[4]);
        uint16_t *out = malloc(n * 2);
        if (!strcmp(cmd, "f16")) ggml_fp32_to_fp16_row(in, (ggml_fp16_t *)out, n);
        else ggml_fp32_to_bf16_row_ref(in, (ggml_bf16_t *)out, n);
        write_file(argv[3], out, n * 2);
        return 0;
    }
    if (!strcmp(cmd, "model-quantize") && (argc == 5 || (argc == 6 && !strcmp(argv[5], "pure")))) {
        llama_backend_init();
        struct llama_model_quantize_params params = llama_model_quantize_default_params();
        params.ftype = (enum llama_ftype)atoi(argv[4]);
        params.pure = argc == 6;
        params.nthread = 1;
        uint32_t rc = llama_model_quantize(argv[2], argv[3], &params);
        llama_backend_free();
        return rc == 0 ? 0 : 1;
    }
    if (!strcmp(cmd, "dump") && argc == 3) return dump(argv[2]);
    fprintf(stderr, "ggml-tool: unknown command or arguments\n");
    return 2;
}
