# eltwise kernels (csrc/eltwise); wrappers are added with their implementation.
