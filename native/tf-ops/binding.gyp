{
  "targets": [
    {
      "target_name": "tagi_tf_ops",
      "sources": ["../src/ce-kl.c"],
      "cflags": ["-O3", "-std=gnu11", "-Wall", "-march=native", "-ffast-math", "-fopenmp"],
      "include_dirs": ["<!(echo $TAGI_TF_DEPS)/include"],
      "libraries": ["-fopenmp", "-L<!(echo $TAGI_TF_DEPS)/lib", "-ltensorflow_framework", "-Wl,-rpath,<!(echo $TAGI_TF_DEPS)/lib"]
    }
  ]
}
