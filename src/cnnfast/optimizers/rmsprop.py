"""RMSprop with Keras 3 defaults and update rule, one fused C call per step.

    v = rho * v + (1 - rho) * g*g
    a = rho * a + (1 - rho) * g;  denom = v - a*a       (centered)
    increment = lr * g / sqrt(denom + epsilon)
    mom = momentum * mom + increment;  w -= mom          (momentum > 0)
    w -= increment                                       (otherwise)
"""
from __future__ import annotations

from .. import ops
from .base import Optimizer, _opt_float

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None, use_ema=False,
                 ema_momentum=0.99, ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name="rmsprop", **kwargs):
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, use_ema=use_ema,
                         ema_momentum=ema_momentum, ema_overwrite_frequency=ema_overwrite_frequency,
                         loss_scale_factor=loss_scale_factor,
                         gradient_accumulation_steps=gradient_accumulation_steps, name=name, **kwargs)
        self.rho = _opt_float(rho, "RMSprop", "rho", 0.0, allow_none=False)
        self.momentum = _opt_float(momentum, "RMSprop", "momentum", 0.0, allow_none=False)
        self.epsilon = _opt_float(epsilon, "RMSprop", "epsilon", 0.0, allow_none=False)
        if self.rho > 1:
            raise ValueError(f"RMSprop: rho must be in [0, 1], got {rho!r}")
        self.centered = bool(centered)

    def _slot_names(self):
        names = ["velocity"]
        if self.momentum:
            names.append("momentum")
        if self.centered:
            names.append("average_gradient")
        return tuple(names)

    def _update(self, param, grad, slots, lr, step, weight_decay):
        ops.rmsprop_update(param, grad, slots["velocity"], learning_rate=lr, rho=self.rho,
                           momentum=self.momentum, epsilon=self.epsilon, centered=self.centered,
                           average_grad=slots.get("average_gradient"),
                           momentum_buffer=slots.get("momentum"), weight_decay=weight_decay)

    def get_config(self):
        config = super().get_config()
        config.update(rho=self.rho, momentum=self.momentum, epsilon=self.epsilon, centered=self.centered)
        return config
