"""The contract every loss head follows.

A *head* is two parts, as in insightface's ``arcface_torch``:

* class centres (:class:`fr.heads.classifier.PartialFC`, of which a full cosine classifier is the
  ``sample_rate=1`` case) turn normalised embeddings into cosines ``c = clamp(x^ . W^_j, -1, 1)``;
* a *margin rule* (:class:`MarginRule`) turns cosines, labels and feature norms into a loss.

:class:`Head` glues the two, so that every head works behind the full classifier and behind Partial FC,
and returns one :class:`HeadOutput` type: a training loop never branches on a head's name.

Label convention: ``-1`` means "ignore this row" (it contributes no loss and no gradient). Inside a
sharded Partial FC, a row whose class lives on another rank has local label ``-1`` but is still a
valid row: :class:`ShardContext` keeps the two apart (``ctx.valid`` versus ``ctx.has_target``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import dist as D


@dataclass
class HeadOutput:
    """What every head returns.

    loss:   scalar tensor (mean over valid rows).
    logits: the scaled, margin-modified logits over the local (possibly sampled) classes, shape
            ``(B, C_local)``; ``None`` for a head without logits. Columns follow ``ctx.local_labels``.
    stats:  floats worth logging (margin statistics, EMA state, loss components).
    labels: the column of each row's class in ``logits`` (-1 when absent), for accuracy.
    """

    loss: torch.Tensor
    logits: torch.Tensor | None
    stats: dict[str, float] = field(default_factory=dict)
    labels: torch.Tensor | None = None


class ShardContext:
    """Everything a margin rule needs to know about which classes are where.

    In one process (``world_size == 1``) the helpers are plain tensor operations. Under a sharded
    Partial FC they sum over ranks, so a rule written against this context is correct in both.
    """

    def __init__(self, labels: torch.Tensor, local_labels: torch.Tensor):
        self.labels = labels  # global class id per row, -1 = ignore
        self.local_labels = local_labels  # column in the local cosine matrix, -1 = not here
        self.valid = labels >= 0
        self.has_target = local_labels >= 0
        self.distributed = D.is_dist()
        self.world_size = D.world_size()
        #: l2-normalised class centres aligned with the local cosine columns (set by :class:`Head`)
        self.centres: torch.Tensor | None = None

    # --- reductions over classes ---------------------------------------------------------------
    def all_sum(self, x: torch.Tensor) -> torch.Tensor:
        return D.all_sum(x) if self.distributed else x

    def onehot(self, like: torch.Tensor) -> torch.Tensor:
        """Boolean ``(B, C_local)`` mask of the target column (all False on rows without one)."""
        cols = torch.arange(like.shape[1], device=like.device)
        return (cols[None, :] == self.local_labels[:, None]) & self.has_target[:, None]

    def target(self, mat: torch.Tensor) -> torch.Tensor:
        """The value of ``mat`` at each row's target column, summed over shards; 0 on invalid rows."""
        idx = self.local_labels.clamp_min(0)[:, None]
        local = mat.gather(1, idx).squeeze(1) * self.has_target.to(mat.dtype)
        return self.all_sum(local)

    def replace_target(self, mat: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """``mat`` with the target column of each row replaced by ``values`` (shape ``(B,)``)."""
        return torch.where(self.onehot(mat), values[:, None].to(mat.dtype), mat)

    def sum_classes(self, mat: torch.Tensor) -> torch.Tensor:
        """Row sums over all classes of all shards."""
        return self.all_sum(mat.sum(1))

    def logsumexp(self, logits: torch.Tensor) -> torch.Tensor:
        """Row-wise log-sum-exp over all shards (max-subtracted)."""
        m = D.all_max(logits.detach().max(1).values) if self.distributed else logits.detach().max(1).values
        s = self.all_sum(torch.exp(logits - m[:, None]).sum(1))
        return m + torch.log(s)

    def log_prob_target(self, logits: torch.Tensor) -> torch.Tensor:
        """``log p_y`` for each row under a softmax over all classes of all shards."""
        return self.target(logits) - self.logsumexp(logits)

    def count_once(self, term: torch.Tensor) -> torch.Tensor:
        """A loss term that every rank computes identically from gathered rows only (say MagFace's norm
        regulariser): its value is kept, its gradient is divided by the world size, because the gathered
        rows' gradients are summed over ranks. Identity in one process."""
        if self.world_size == 1:
            return term
        return term / self.world_size + term.detach() * (1.0 - 1.0 / self.world_size)

    # --- reductions over rows ------------------------------------------------------------------
    def mean_valid(self, v: torch.Tensor) -> torch.Tensor:
        """Mean of ``v`` over valid rows (0, with a graph, when no row is valid)."""
        w = self.valid.to(v.dtype)
        return (v * w).sum() / w.sum().clamp_min(1.0)

    def cross_entropy(self, logits: torch.Tensor) -> torch.Tensor:
        return self.mean_valid(-self.log_prob_target(logits))


class MarginRule(nn.Module):
    """Base class of the margin rules. Subclasses implement :meth:`logits` and, when the loss is not
    softmax cross-entropy over those logits, :meth:`loss`.

    ``cos`` arrives clamped to [-1, 1] in float32 (float64 when the head runs in float64), shape
    ``(B, C_local)``. ``norms`` is the feature norm ``||x||`` of each row, shape ``(B,)``; it carries
    gradient only if the backbone's norm does (MagFace wants it, AdaFace detaches it itself).

    State (EMA statistics, counters) lives in buffers and is updated only when ``self.training``.
    """

    def __init__(self) -> None:
        super().__init__()
        self._stats: dict[str, float] = {}

    def logits(self, cos: torch.Tensor, ctx: ShardContext, norms: torch.Tensor) -> torch.Tensor:
        """The head's scaled logits over the local classes, shape ``(B, C_local)``, in ``cos.dtype``.

        Inputs: ``cos`` ``(B, C_local)``: every row of the (all-gathered) batch against the classes this rank
        holds (the sampled ones under Partial FC), column ``ctx.local_labels[i]`` being row ``i``'s target where
        ``ctx.has_target[i]``; ``norms`` ``(B,)``. The logits must be finite on every row, including rows
        labelled -1 and rows whose target column is on another rank. A row's target logit is changed only
        through ``ctx.replace_target`` or a ``ctx.onehot`` mask, which touch a row only where its target column
        is local.

        Reading the target cosine ``c_y``. There are two ways, and they differ under sharding:

        * ``ctx.target(cos)``: the value at each row's target column summed over shards, so the true ``c_y`` on
          every rank for every valid row (0 on rows labelled -1), differentiable (the gradient reaches the
          target column on the rank that holds it); one all-reduce of ``(B,)`` per call. Always correct.
        * the local gather ``cos.gather(1, ctx.local_labels.clamp_min(0)[:, None]).squeeze(1)``: ``c_y`` only
          on rows with ``ctx.has_target``; on every other row (labelled -1, or target on another rank) it is
          the cosine of local column 0, a meaningless number. It is correct only when its sole use is the
          row's own target logit, written back through ``ctx.replace_target`` (ArcFace, ElasticFace-Arc,
          MagFace, AdaFace), so that no row without a local target ever reads it; it needs no collective.

        Anything else that depends on ``c_y`` must use ``ctx.target``: a non-target logit (the hard-negative
        masks of CurricularFace and MV-Softmax), a cross-row operation (ElasticFace+'s ranking), a state
        update (CurricularFace's ``t``), a statistic, or a loss term (:meth:`loss`). In one process the two
        agree on every valid row, so only the sharded test of ``tests/heads/test_contract.py`` catches the
        wrong one.

        Other rules of the contract: sums or maxima over classes go through ``ctx`` (``sum_classes``,
        ``logsumexp``, ``all_sum``), since a plain ``.sum(1)`` sees one shard; every rank must make the same
        ``ctx`` collective calls in the same order (never under a rank-dependent condition, or the ranks
        wait on each other forever); state lives in buffers, is updated only when ``self.training`` and only
        from global quantities (``ctx.target``, ``ctx.mean_valid``), so that every rank holds the same state;
        statistics (:meth:`stat`) likewise.
        """
        raise NotImplementedError

    def loss(self, logits: torch.Tensor, cos: torch.Tensor, ctx: ShardContext, norms: torch.Tensor) -> torch.Tensor:
        """The scalar loss of the batch from :meth:`logits`' output (default: softmax cross-entropy over all
        classes of all shards, ``ctx.cross_entropy``).

        Contract: the loss is the mean over valid rows (``ctx.mean_valid``) of a per-row loss, so a row
        labelled -1 adds neither value nor gradient; its per-row value must still be finite (a NaN times the
        zero weight is NaN). Every rank computes the same global loss over the all-gathered batch, with
        cross-class pieces through ``ctx`` (``log_prob_target``, ``sum_classes``). A loss term runs on every
        rank for every row, so it reads the target cosine with ``ctx.target(cos)``, never with the local
        gather (see :meth:`logits`). A term whose gradient reaches the gathered embeddings or norms without
        passing through a local cosine column (MagFace's norm regulariser) would have that gradient summed over
        ranks: wrap it in ``ctx.count_once``. Loss components worth logging go to :meth:`stat`.
        """
        return ctx.cross_entropy(logits)

    def forward(self, cos: torch.Tensor, ctx: ShardContext, norms: torch.Tensor) -> HeadOutput:
        self._stats = {}
        logits = self.logits(cos, ctx, norms)
        loss = self.loss(logits, cos, ctx, norms)
        return HeadOutput(loss=loss, logits=logits, stats=dict(self._stats), labels=ctx.local_labels)

    def stat(self, **kw: float | torch.Tensor) -> None:
        """Record statistics of this step; tensors stay detached 0-d tensors (no device sync here), to be
        converted to floats where they are logged (``fr.engine.metrics.scalars``)."""
        for k, v in kw.items():
            self._stats[k] = v.detach() if torch.is_tensor(v) else float(v)

    def extra_repr(self) -> str:
        import inspect

        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return ", ".join(f"{n}={getattr(self, n)!r}" for n in names if hasattr(self, n))


class Head(nn.Module):
    """Class centres plus a margin rule. ``forward(emb, labels, norms=None) -> HeadOutput``.

    ``emb`` is the backbone's embedding, normalised or not; it is l2-normalised here. ``norms`` is
    the feature norm; when ``None`` it is taken from ``emb`` (with gradient). Half-precision
    embeddings are promoted to float32 before the cosine, as insightface does.
    """

    def __init__(self, rule: MarginRule, classifier: nn.Module, name: str = ""):
        super().__init__()
        self.rule = rule
        self.classifier = classifier
        self.name = name

    def forward(self, emb: torch.Tensor, labels: torch.Tensor, norms: torch.Tensor | None = None) -> HeadOutput:
        if emb.dim() != 2:
            raise ValueError(f"embeddings must be (batch, dim), got shape {tuple(emb.shape)}")
        if labels.shape != emb.shape[:1]:
            raise ValueError(f"labels must have shape ({emb.shape[0]},), got {tuple(labels.shape)}")
        dtype = torch.promote_types(emb.dtype, torch.float32)
        emb = emb.to(dtype)
        if norms is None:
            norms = emb.norm(dim=1)
        norms = norms.reshape(-1).to(dtype)
        x = F.normalize(emb, dim=1)
        labels = labels.long()
        if D.is_dist():
            x = D.gather_for_global_loss(x)
            norms = D.gather_for_global_loss(norms)
            labels = D.gather_nograd(labels)
        cos, local_labels = self.classifier(x, labels)
        ctx = ShardContext(labels, local_labels)
        ctx.centres = getattr(self.classifier, "last_centres", None)
        return self.rule(cos, ctx, norms)


# --- numerical helpers shared by the rules ---------------------------------------------------------

def safe_acos(c: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """``acos`` with its argument clamped to ``[-1+eps, 1-eps]`` (finite gradient at +-1)."""
    return torch.acos(c.clamp(-1.0 + eps, 1.0 - eps))


def safe_sin(c: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """``sqrt(1-c^2)`` with the radicand clamped at ``eps`` (finite gradient at +-1)."""
    return torch.sqrt((1.0 - c * c).clamp_min(eps))


def arc_target(c_y: torch.Tensor, m: float | torch.Tensor, *, easy_margin: bool = False,
               th_mm: bool = True, eps: float = 1e-7) -> torch.Tensor:
    """``cos(theta_y + m)`` via the cos/sin expansion (the "exact" ArcFace gradient), with
    insightface's original fallbacks: ``easy_margin`` keeps ``c_y`` when ``c_y <= 0``; otherwise, with
    ``th_mm``, ``c_y - m sin m`` when ``c_y <= cos(pi - m)`` (keeps the logit monotone in theta).
    ``m`` may be a per-row tensor."""
    m_t = torch.as_tensor(m, dtype=c_y.dtype, device=c_y.device)
    phi = c_y * torch.cos(m_t) - safe_sin(c_y, eps) * torch.sin(m_t)
    if easy_margin:
        return torch.where(c_y > 0, phi, c_y)
    if th_mm:
        th = torch.cos(math.pi - m_t)
        mm = torch.sin(math.pi - m_t) * m_t
        return torch.where(c_y > th, phi, c_y - mm)
    return phi
