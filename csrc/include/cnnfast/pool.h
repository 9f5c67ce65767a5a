/*
 * cnnfast/pool.h — (pool kernels; declarations are added with their implementation.)
 */
#ifndef CNNFAST_POOL_H
#define CNNFAST_POOL_H

#include "cnnfast/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __cplusplus
}
#endif
#endif /* CNNFAST_POOL_H */
