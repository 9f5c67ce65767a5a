"""cnnfast.ops — the functional API: validated NumPy-in, NumPy-out calls of the C kernels.

Layout conventions: images NHWC float32, convolution weights HWIO ``(kh, kw, cin, cout)``, dense
weights ``(in, out)``. Inputs of other real dtypes are converted to float32; ``out=`` buffers must
already be float32, C-contiguous and writeable (see ``_checks.py``).
"""
from ._gemm import *  # noqa: F401,F403
from ._conv import *  # noqa: F401,F403
from ._pool import *  # noqa: F401,F403
from ._eltwise import *  # noqa: F401,F403
from ._optim import *  # noqa: F401,F403
from ._numpy import *  # noqa: F401,F403  (Keras-shaped NumPy functions, keras.ops names)
from ._core import *  # noqa: F401,F403
from ._math import *  # noqa: F401,F403
from ._nn import *  # noqa: F401,F403
from . import image  # noqa: F401
from ._resize import *  # noqa: F401,F403
from ._embedding import *  # noqa: F401,F403
from ._conv3d import *  # noqa: F401,F403
from ._pool3d import *  # noqa: F401,F403
