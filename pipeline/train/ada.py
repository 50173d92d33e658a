"""Adaptive augmentation strength (ADA: Karras, Aittala, Hellsten, Laine, Lehtinen and Aila, "Training
Generative Adversarial Networks with Limited Data", NeurIPS 2020).

A fixed augmentation strength is too weak while D memorises a small set and too strong once G is
good (measured here: DiffAugment at full strength wins early and loses late; bench/RESULTS.md).
ADA measures D's overfitting on the training images themselves, r_t = E[sign(D(real))] (0 when D
cannot tell, 1 when it is sure of every real image), and every ``interval`` steps moves the
probability p with which each augmentation reaches an image by sign(r_t - target) x (images seen in
the interval) / (``speed_kimg`` x 1000): p can go from 0 to 1 over ``speed_kimg`` thousand images
(the paper's 500, target 0.6, interval 4).

For the relativistic pairing loss (RpGAN) D's logits carry no absolute meaning, only differences
do, so the signal there is E[sign(D(real) - D(fake))] over the batch's pairs, the same quantity in
the loss's own terms (a choice of this project, not the paper's).

Everything stays on the device: the sign sums are accumulated inside the training step (a CUDA
graph) and the update is a few tensor ops between steps, so there is no host sync; p is a 0-d tensor
updated in place (the graph reads it by address), saved in checkpoints and read at log points.
"""

from __future__ import annotations

import torch


class AdaptiveP:
    def __init__(self, device: torch.device, *, target: float = 0.6, interval: int = 4, speed_kimg: float = 500.0,
                 start: float = 0.0):
        self.target, self.interval, self.speed_kimg = target, interval, speed_kimg
        self.p = torch.full((), float(start), device=device)
        self.signs = torch.zeros((), device=device)   # sum of sign(D's real signal) since the last update
        self.count = torch.zeros((), device=device)   # images behind that sum

    @torch.no_grad()
    def observe(self, signal: torch.Tensor) -> None:
        """Called inside the step with D's per-image real signal (logits, or paired differences; a
        PatchGAN's grid of logits counts as its mean)."""
        signal = signal.detach().float()
        if signal.dim() > 1:
            signal = signal.flatten(1).mean(1)
        self.signs += torch.sign(signal).sum()
        self.count += signal.shape[0]

    @torch.no_grad()
    def step(self, done_steps: int, batch_images: int, reduce=None) -> None:
        """Between steps: every ``interval`` steps move p by the overfitting signal of the interval.
        ``reduce`` sums a tensor over DDP ranks in place (every rank then moves p alike)."""
        if done_steps % self.interval:
            return
        if reduce is not None:
            reduce(self.signs)
            reduce(self.count)
        r = self.signs / self.count.clamp_min(1)
        adjust = torch.sign(r - self.target) * (batch_images * self.interval) / (self.speed_kimg * 1000)
        self.p.copy_((self.p + adjust * (self.count > 0)).clamp(0.0, 1.0))
        self.signs.zero_()
        self.count.zero_()

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"p": self.p.detach().cpu(), "signs": self.signs.detach().cpu(), "count": self.count.detach().cpu()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for k in ("p", "signs", "count"):
            getattr(self, k).copy_(state[k])
