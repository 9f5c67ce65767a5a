/*
 * cnnfast/gemm.h — (gemm kernels; declarations are added with their implementation.)
 */
#ifndef CNNFAST_GEMM_H
#define CNNFAST_GEMM_H

#include "cnnfast/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __cplusplus
}
#endif
#endif /* CNNFAST_GEMM_H */
