"""Losses: the MulSupCon contrastive loss (and ALL / ANY), and the asymmetric loss (ASL).

* :mod:`.mulsupcon` — the public :class:`MulSupConLoss`, checkable against the paper's Eq. 4-6;
* :mod:`.fused` — how it is computed (one fused autograd function, a cost model for Eq. 7);
* :mod:`.chunked` — the bounded-memory form for huge queues;
* :mod:`.instance` — :class:`InstanceContrastLoss`, MoCo's own-key term (``pretrain.instance_weight``);
* :mod:`.asl` — :class:`AsymmetricLoss`; :mod:`.checks` — input checks.
"""

from .asl import AsymmetricLoss
from .instance import InstanceContrastLoss
from .mulsupcon import POSITIVE_RULES, WEIGHTINGS, MulSupConLoss

__all__ = ["MulSupConLoss", "InstanceContrastLoss", "AsymmetricLoss", "POSITIVE_RULES", "WEIGHTINGS"]
