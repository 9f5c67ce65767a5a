/*
 * cnnfast/conv.h — (conv kernels; declarations are added with their implementation.)
 */
#ifndef CNNFAST_CONV_H
#define CNNFAST_CONV_H

#include "cnnfast/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __cplusplus
}
#endif
#endif /* CNNFAST_CONV_H */
