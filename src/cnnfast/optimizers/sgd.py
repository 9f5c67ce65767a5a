"""SGD with optional (Nesterov) momentum, Keras 3 update rule, one fused C call per step.

    velocity = momentum * velocity - lr * g
    w += velocity                              (momentum)
    w += momentum * velocity - lr * g          (Nesterov)
    w -= lr * g                                (momentum == 0; no state)
"""
from __future__ import annotations

from .. import ops
from .base import Optimizer, _opt_float

__all__ = ["SGD"]


class SGD(Optimizer):
    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None, gradient_accumulation_steps=None,
                 name="SGD", **kwargs):
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, use_ema=use_ema,
                         ema_momentum=ema_momentum, ema_overwrite_frequency=ema_overwrite_frequency,
                         loss_scale_factor=loss_scale_factor,
                         gradient_accumulation_steps=gradient_accumulation_steps, name=name, **kwargs)
        self.momentum = _opt_float(momentum, "SGD", "momentum", 0.0, allow_none=False)
        if self.momentum > 1:
            raise ValueError(f"SGD: momentum must be in [0, 1], got {momentum!r}")
        self.nesterov = bool(nesterov)

    def _slot_names(self):
        return ("momentum",) if self.momentum else ()

    def _update(self, param, grad, slots, lr, step, weight_decay):
        ops.sgd_update(param, grad, slots.get("momentum"), learning_rate=lr, momentum=self.momentum,
                       nesterov=self.nesterov, weight_decay=weight_decay)

    def get_config(self):
        config = super().get_config()
        config.update(momentum=self.momentum, nesterov=self.nesterov)
        return config
