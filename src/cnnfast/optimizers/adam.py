"""Adam and AdamW with Keras 3 defaults and update rule, one fused C call per step.

    t = iterations + 1
    alpha = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)
    m += (g - m) * (1 - beta_1);  v += (g*g - v) * (1 - beta_2)
    v_hat = max(v_hat, v) if amsgrad
    w -= alpha * m / (sqrt(v or v_hat) + epsilon)     # epsilon not bias-corrected ("epsilon hat")

AdamW is Adam with ``weight_decay=0.004`` by default (decoupled: ``w -= w * wd * lr`` first).
"""
from __future__ import annotations

from .. import ops
from .base import Optimizer, _opt_float

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None, use_ema=False,
                 ema_momentum=0.99, ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name="adam", **kwargs):
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, use_ema=use_ema,
                         ema_momentum=ema_momentum, ema_overwrite_frequency=ema_overwrite_frequency,
                         loss_scale_factor=loss_scale_factor,
                         gradient_accumulation_steps=gradient_accumulation_steps, name=name, **kwargs)
        cls = type(self).__name__
        self.beta_1 = _opt_float(beta_1, cls, "beta_1", 0.0, allow_none=False)
        self.beta_2 = _opt_float(beta_2, cls, "beta_2", 0.0, allow_none=False)
        if self.beta_1 >= 1 or self.beta_2 >= 1:
            raise ValueError(f"{cls}: beta_1 and beta_2 must be in [0, 1), got {beta_1!r}, {beta_2!r}")
        self.epsilon = _opt_float(epsilon, cls, "epsilon", 0.0, allow_none=False)
        self.amsgrad = bool(amsgrad)

    def _slot_names(self):
        return ("momentum", "velocity", "velocity_hat") if self.amsgrad else ("momentum", "velocity")

    def _update(self, param, grad, slots, lr, step, weight_decay):
        ops.adam_update(param, grad, slots["momentum"], slots["velocity"], step=step, learning_rate=lr,
                        beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon,
                        v_hat=slots.get("velocity_hat"), weight_decay=weight_decay)

    def get_config(self):
        config = super().get_config()
        config.update(beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon, amsgrad=self.amsgrad)
        return config


class AdamW(Adam):
    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, clipnorm=None, clipvalue=None, global_clipnorm=None, use_ema=False,
                 ema_momentum=0.99, ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name="adamw", **kwargs):
        if weight_decay is None:
            raise ValueError("AdamW: weight_decay must be a number (use Adam for no decay)")
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
                         amsgrad=amsgrad, weight_decay=weight_decay, clipnorm=clipnorm, clipvalue=clipvalue,
                         global_clipnorm=global_clipnorm, use_ema=use_ema, ema_momentum=ema_momentum,
                         ema_overwrite_frequency=ema_overwrite_frequency,
                         loss_scale_factor=loss_scale_factor,
                         gradient_accumulation_steps=gradient_accumulation_steps, name=name, **kwargs)
