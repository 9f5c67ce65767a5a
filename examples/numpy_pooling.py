"""Max pooling versus average pooling on a 4x4 feature map, with cnnfast.ops.max_pool2d/avg_pool2d.

A 2x2 pooling window with stride 2 (the MaxPooling2D / AveragePooling2D defaults) splits the map
into four 2x2 blocks and keeps one number per block: the largest (max) or the mean (average).
The ops work on NHWC batches, so the 4x4 map becomes a (1, 4, 4, 1) array. Each result is checked
against a plain NumPy computation.

    python examples/numpy_pooling.py
"""
from __future__ import annotations

import sys

import numpy as np

from cnnfast import ops


def main() -> int:
    fmap = np.array([[1, 3, 2, 1],
                     [4, 6, 5, 0],
                     [3, 1, 1, 2],
                     [0, 2, 7, 4]], np.float32)
    print("feature map (4x4):\n", fmap.astype(int))

    batch = fmap[None, :, :, None]                      # (N=1, H=4, W=4, C=1)
    max_out = ops.max_pool2d(batch, pool_size=(2, 2))[0, :, :, 0]
    avg_out = ops.avg_pool2d(batch, pool_size=(2, 2))[0, :, :, 0]
    print("\nmax_pool2d, 2x2, stride 2 (keeps the strongest response in each block):\n", max_out)
    print("\navg_pool2d, 2x2, stride 2 (keeps the mean of each block):\n", avg_out)

    blocks = fmap.reshape(2, 2, 2, 2).swapaxes(1, 2)   # blocks[i, j] is the 2x2 block (i, j)
    np.testing.assert_array_equal(max_out, blocks.max(axis=(2, 3)))
    np.testing.assert_allclose(avg_out, blocks.mean(axis=(2, 3)))

    overlap = ops.max_pool2d(batch, pool_size=(2, 2), strides=(1, 1))[0, :, :, 0]
    print("\nmax_pool2d, 2x2, stride 1 (overlapping windows, 3x3 output):\n", overlap)
    np.testing.assert_array_equal(
        overlap, np.lib.stride_tricks.sliding_window_view(fmap, (2, 2)).max(axis=(2, 3)))

    same = ops.max_pool2d(fmap[None, :3, :3, None], pool_size=(2, 2), padding="same")[0, :, :, 0]
    print("\nmax_pool2d of the top-left 3x3 with padding='same' (2x2 output; the edge windows are cut):\n",
          same)
    padded = np.full((4, 4), -np.inf, np.float32)     # 'same' pads bottom/right; padding never wins
    padded[:3, :3] = fmap[:3, :3]
    np.testing.assert_array_equal(same, padded.reshape(2, 2, 2, 2).swapaxes(1, 2).max(axis=(2, 3)))
    print("\nAll results match NumPy.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
