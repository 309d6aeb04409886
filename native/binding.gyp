{
  "targets": [
    {
      "target_name": "tagi_gemm",
      "sources": ["src/gemm.c"],
      "cflags": ["-O3", "-std=c11", "-Wall"],
      "include_dirs": ["/usr/include/x86_64-linux-gnu", "/usr/include/openblas"],
      "libraries": ["-lopenblas"]
    }
  ]
}
