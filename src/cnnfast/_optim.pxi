# optim kernels (csrc/optim); wrappers are added with their implementation.
