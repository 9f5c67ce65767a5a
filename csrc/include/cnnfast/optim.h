/*
 * cnnfast/optim.h — (optim kernels; declarations are added with their implementation.)
 */
#ifndef CNNFAST_OPTIM_H
#define CNNFAST_OPTIM_H

#include "cnnfast/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __cplusplus
}
#endif
#endif /* CNNFAST_OPTIM_H */
