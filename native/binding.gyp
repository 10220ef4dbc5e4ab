{
  "targets": [
    {
      "target_name": "lorasmith_native",
      "sources": ["src/addon.c", "src/blas.c", "src/convert.c", "src/cores.c", "src/fused.c", "src/parallel.c", "src/weights.c"],
      "cflags_c": ["-O3", "-std=c11", "-Wall", "-Wextra", "-fno-trapping-math", "-fno-math-errno"],
      "xcode_settings": {"OTHER_CFLAGS": ["-O3", "-std=c11", "-fno-trapping-math", "-fno-math-errno"]},
      "defines": ["NAPI_VERSION=8"],
      "conditions": [
        ["OS=='mac'", {
          "defines": ["LORASMITH_ACCELERATE", "ACCELERATE_NEW_LAPACK"],
          "libraries": ["-framework Accelerate"]
        }],
        ["OS=='linux'", {
          "include_dirs": ["<!(node -p \"process.env.OPENBLAS_INCLUDE || '/usr/include/x86_64-linux-gnu'\")"],
          "libraries": ["<!(node -p \"process.env.OPENBLAS_LIB ? '-L' + process.env.OPENBLAS_LIB : ''\")", "-lopenblas", "-pthread"],
          "ldflags": [
            "-Wl,--disable-new-dtags,-rpath,'$$ORIGIN'",
            "<!(node -p \"process.env.OPENBLAS_LIB ? '-Wl,-rpath,' + process.env.OPENBLAS_LIB : ''\")"
          ]
        }],
        ["OS=='win'", {
          "include_dirs": ["<!(node -p \"(process.env.OPENBLAS_DIR || 'C:/OpenBLAS') + '/include'\")"],
          "libraries": ["<!(node -p \"(process.env.OPENBLAS_DIR || 'C:/OpenBLAS') + '/lib/libopenblas.lib'\")"]
        }]
      ]
    }
  ]
}
