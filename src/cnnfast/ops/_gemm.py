"""gemm ops (filled in with their kernels)."""
__all__: list = []
