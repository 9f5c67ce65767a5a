# conv kernels (csrc/conv); wrappers are added with their implementation.
