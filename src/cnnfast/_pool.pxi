# pool kernels (csrc/pool); wrappers are added with their implementation.
