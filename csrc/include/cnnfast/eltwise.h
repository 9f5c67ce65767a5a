/*
 * cnnfast/eltwise.h — (eltwise kernels; declarations are added with their implementation.)
 */
#ifndef CNNFAST_ELTWISE_H
#define CNNFAST_ELTWISE_H

#include "cnnfast/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __cplusplus
}
#endif
#endif /* CNNFAST_ELTWISE_H */
