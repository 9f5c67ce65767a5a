"""Convolution on a NumPy image: an edge-detection kernel with cnnfast.ops.correlate2d/convolve2d.

A CNN layer slides a small kernel over the image and takes a weighted sum at each position. Deep
learning libraries compute the *cross-correlation* (kernel not flipped: ``correlate2d``); the
mathematical *convolution* flips the kernel first (``convolve2d``). For a symmetric kernel the two
agree; for an edge detector they give opposite signs. Both are checked here against a plain
NumPy double loop, and ``correlate2d`` against the batched NHWC ``cnnfast.ops.conv2d`` that the
Conv2D layer runs.

    python examples/numpy_convolution.py
"""
from __future__ import annotations

import sys

import numpy as np

from cnnfast import ops


def correlate_loops(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """'valid' cross-correlation, written out: out[r, c] = sum(image[r:r+kh, c:c+kw] * kernel)."""
    kh, kw = kernel.shape
    out = np.zeros((image.shape[0] - kh + 1, image.shape[1] - kw + 1))
    for r in range(out.shape[0]):
        for c in range(out.shape[1]):
            out[r, c] = np.sum(image[r:r + kh, c:c + kw] * kernel)
    return out


def main() -> int:
    np.set_printoptions(linewidth=120)
    # an 8x8 image: bright left half (9), dark right half (0), and a bright square in the corner
    image = np.zeros((8, 8), np.float32)
    image[:, :4] = 9
    image[5:7, 5:7] = 9
    print("image:\n", image.astype(int))

    vertical_edge = np.array([[1, 0, -1],
                              [2, 0, -2],
                              [1, 0, -1]], np.float32)   # Sobel x: responds to left-right changes
    print("\nkernel (Sobel, vertical edges):\n", vertical_edge.astype(int))

    corr = ops.correlate2d(image, vertical_edge)           # what a Conv2D layer computes
    conv = ops.convolve2d(image, vertical_edge)            # kernel flipped: the opposite sign
    print("\ncorrelate2d(image, kernel), 'valid' 6x6 (bright-to-dark edges are positive):\n", corr.astype(int))
    print("\nconvolve2d(image, kernel): the flipped kernel gives the opposite sign:\n", conv.astype(int))

    np.testing.assert_allclose(corr, correlate_loops(image, vertical_edge))
    np.testing.assert_allclose(conv, correlate_loops(image, vertical_edge[::-1, ::-1]))
    np.testing.assert_allclose(conv, -corr)  # this kernel is antisymmetric left-right

    same = ops.correlate2d(image, vertical_edge, mode="same")
    print(f"\nmode='same' keeps the 8x8 size (zero padding): shape {same.shape}; "
          f"mode='full' gives {ops.correlate2d(image, vertical_edge, mode='full').shape}")

    # the same computation as a one-image, one-channel, one-filter NHWC convolution (Conv2D's op)
    batched = ops.conv2d(image[None, :, :, None], vertical_edge[:, :, None, None])
    np.testing.assert_allclose(batched[0, :, :, 0], corr)
    print("conv2d on the (1, 8, 8, 1) batch with the (3, 3, 1, 1) kernel gives the same 6x6 map.")

    blur = np.full((3, 3), 1 / 9, np.float32)              # symmetric: correlation == convolution
    np.testing.assert_allclose(ops.correlate2d(image, blur), ops.convolve2d(image, blur), rtol=1e-6)
    print("For the symmetric 3x3 box blur, correlate2d and convolve2d agree.")
    print("\nAll results match the NumPy loops.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
