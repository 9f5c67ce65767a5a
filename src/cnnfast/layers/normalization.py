"""BatchNormalization over the last (channel) axis, Keras semantics.

Training (``training=True`` and the layer trainable): normalise with the batch mean and biased
variance, then update the moving statistics in place,
``moving = moving * momentum + batch * (1 - momentum)``. Inference, or a frozen layer
(``trainable = False``, as Keras 3): normalise with the moving statistics. Four weights per
channel: gamma, beta (trainable), moving_mean, moving_variance (non-trainable); ``center=False``
drops beta and ``scale=False`` drops gamma.

The kernels work on ``(rows, channels)``; any input rank is viewed that way without copying.
"""
from __future__ import annotations

from .. import initializers as _initializers
from .. import ops
from ..ops._checks import as_float, as_int
from .base import Layer, grad_target
from .core import _reject_unsupported, _set_weight_options, _weight_options_config

__all__ = ["BatchNormalization"]


class BatchNormalization(Layer):
    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones", moving_mean_initializer="zeros",
                 moving_variance_initializer="ones", beta_regularizer=None, gamma_regularizer=None,
                 beta_constraint=None, gamma_constraint=None, synchronized=False, renorm=False,
                 renorm_clipping=None, renorm_momentum=0.99, **kwargs):
        super().__init__(**kwargs)
        op = f"BatchNormalization '{self.name}'"
        _reject_unsupported(self, renorm_clipping=renorm_clipping)
        _set_weight_options(self, beta_regularizer=beta_regularizer, gamma_regularizer=gamma_regularizer,
                            beta_constraint=beta_constraint, gamma_constraint=gamma_constraint)
        if renorm:
            raise NotImplementedError(f"{op}: renorm is not supported")
        self.axis = as_int(axis, op, "axis")
        self.momentum = as_float(momentum, op, "momentum")
        self.epsilon = as_float(epsilon, op, "epsilon")
        if not 0.0 <= self.momentum <= 1.0:
            raise ValueError(f"{op}: momentum must be in [0, 1], got {momentum!r}")
        if self.epsilon <= 0:
            raise ValueError(f"{op}: epsilon must be > 0, got {epsilon!r}")
        self.center, self.scale = bool(center), bool(scale)
        self.synchronized = bool(synchronized)
        self.renorm_momentum = as_float(renorm_momentum, op, "renorm_momentum")
        inits = {}
        for key, value in (("beta_initializer", beta_initializer), ("gamma_initializer", gamma_initializer),
                           ("moving_mean_initializer", moving_mean_initializer),
                           ("moving_variance_initializer", moving_variance_initializer)):
            inits[key] = _initializers.get(value, f"{op}: {key}")
        self.__dict__.update(inits)
        self.gamma = self.beta = self.moving_mean = self.moving_variance = None

    def build(self, input_shape):
        axis = self.axis if self.axis >= 0 else len(input_shape) + self.axis
        if axis != len(input_shape) - 1 or axis == 0:
            raise ValueError(f"BatchNormalization '{self.name}': cnnfast normalises over the last "
                             f"(channel) axis only; got axis={self.axis} for input shape {input_shape}")
        c = input_shape[-1]
        if c is None:
            raise ValueError(f"BatchNormalization '{self.name}': the channel axis must be defined, "
                             f"got input shape {input_shape}")
        if self.scale:
            self.gamma = self.add_weight((c,), self.gamma_initializer, name="gamma",
                                         regularizer=self.gamma_regularizer, constraint=self.gamma_constraint)
        if self.center:
            self.beta = self.add_weight((c,), self.beta_initializer, name="beta",
                                        regularizer=self.beta_regularizer, constraint=self.beta_constraint)
        self.moving_mean = self.add_weight((c,), self.moving_mean_initializer, name="moving_mean",
                                           trainable=False)
        self.moving_variance = self.add_weight((c,), self.moving_variance_initializer,
                                               name="moving_variance", trainable=False)
        self._input_spec = (len(input_shape), {-1: c})

    def forward(self, x, training, ctx):
        c = x.shape[-1]
        x2 = x.reshape(-1, c)
        batch_stats = bool(training) and self._trainable
        y, mean, inv_std = ops.batch_norm_forward(
            x2, None if self.gamma is None else self.gamma.value, None if self.beta is None else self.beta.value,
            self.moving_mean.value, self.moving_variance.value, momentum=self.momentum, epsilon=self.epsilon,
            training=batch_stats)
        ctx.update(x=x2, mean=mean, inv_std=inv_std, batch_stats=batch_stats)
        return y.reshape(x.shape)

    def backward(self, dy, ctx, need_dx):
        x2 = ctx["x"]
        batch_stats = ctx["batch_stats"]
        # gamma and beta learn in inference mode too (a trainable layer called with training=False)
        want_w = self._trainable and self._trainable_weights_exist()
        if not need_dx and not want_w:
            return None
        # inference mode (or a frozen layer): the statistics are constants, dx = gamma*inv_std*dy
        dx, dgamma, dbeta = ops.batch_norm_backward(dy.reshape(x2.shape), x2,
                                                    None if self.gamma is None else self.gamma.value,
                                                    ctx["mean"], ctx["inv_std"], training=batch_stats)
        if want_w:
            for var, g in ((self.gamma, dgamma), (self.beta, dbeta)):
                if var is not None:
                    slot, acc = grad_target(var)
                    if acc:
                        slot += g
                    else:
                        slot[...] = g
        return dx.reshape(dy.shape) if need_dx else None

    def _trainable_weights_exist(self):
        return self.gamma is not None or self.beta is not None

    def get_config(self):
        config = super().get_config()
        config.update(axis=self.axis, momentum=self.momentum, epsilon=self.epsilon, center=self.center,
                      scale=self.scale, synchronized=self.synchronized)
        for key in ("beta_initializer", "gamma_initializer", "moving_mean_initializer",
                    "moving_variance_initializer"):
            config[key] = _initializers.serialize(getattr(self, key))
        config.update(_weight_options_config(self, "beta_regularizer", "gamma_regularizer",
                                             "beta_constraint", "gamma_constraint"))
        # Keras writes the batch-renormalisation arguments too (renorm itself is refused above)
        config.update(renorm=False, renorm_clipping=None, renorm_momentum=self.renorm_momentum)
        return config
