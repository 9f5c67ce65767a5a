# gemm kernels (csrc/gemm); wrappers are added with their implementation.
