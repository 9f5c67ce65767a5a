# Runtime: ISA dispatch and threads (csrc/runtime).

cdef extern from "cnnfast.h" nogil:
    int cf_cpu_best_isa()
    int cf_get_isa()
    cf_status cf_set_isa(int isa)
    const char *cf_isa_name(int isa)
    cf_status cf_set_num_threads(int n)
    int cf_get_num_threads()
    cf_status cf_set_parallel_min_bytes(int64_t bytes)
    int64_t cf_get_parallel_min_bytes()
    const char *cf_compiler_info()
    int cf_openmp_version()
    int CF_ISA_COUNT
    ctypedef struct cf_cache_sizes:
        int64_t l1d
        int64_t l2
        int64_t l3
    cf_cache_sizes cf_cpu_cache_sizes()


def isa_names():
    """Names of the ISA paths, lowest first."""
    return [cf_isa_name(i).decode() for i in range(CF_ISA_COUNT)]


def cpu_best_isa():
    return cf_isa_name(cf_cpu_best_isa()).decode()


def cache_sizes():
    """This CPU's cache sizes in bytes (CPUID): dict with l1d and l2 (one core's) and l3."""
    cdef cf_cache_sizes c = cf_cpu_cache_sizes()
    return {"l1d": c.l1d, "l2": c.l2, "l3": c.l3}


def get_isa():
    return cf_isa_name(cf_get_isa()).decode()


def set_isa(int isa_index):
    check_status(cf_set_isa(isa_index), "set_isa")


def set_num_threads(int n):
    check_status(cf_set_num_threads(n), "set_num_threads")


def get_num_threads():
    return cf_get_num_threads()


def set_parallel_min_bytes(int64_t nbytes):
    check_status(cf_set_parallel_min_bytes(nbytes), "set_parallel_min_bytes")


def get_parallel_min_bytes():
    return cf_get_parallel_min_bytes()


def compiler_info():
    return cf_compiler_info().decode()


def openmp_version():
    return cf_openmp_version()
