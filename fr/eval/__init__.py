"""Evaluation: embedding extraction, 1:1 verification protocols, TAR@FAR, IJB-style templates, rank-N
identification, and the statistics to tell a real gap from noise.

>>> vset = fr.data.load_bin(fr.data.find_bin("lfw"))
>>> res = fr.eval.evaluate_verification(model, vset, protocol="insightface", flip="sum")
>>> res.summary()          # 'lfw: 99.50 ± 0.30 % (std) [insightface/sqL2/10fold/flip-sum, 6000 pairs]'
>>> fr.eval.compare(res, other)["mcnemar"].p_value
"""
from __future__ import annotations

from .embed import FLIP_MODES, extract_embeddings
from .identification import IdentificationResult, cmc, evaluate_identification, probe_ranks
from .ijb import IJBResult, evaluate_templates, image_features, template_features, template_pair_scores
from .roc import TAR_METHODS, auc, far_resolution, roc_curve, tar_at_far
from .stats import (Interval, PairedTest, bootstrap_accuracy_ci, compare, fold_ci, mcnemar_test,
                    paired_bootstrap, t_quantile)
from .verification import (PROTOCOLS, Protocol, VerificationResult, contiguous_folds, correct_from_hex,
                           evaluate_verification,
                           get_protocol, pair_scores, verify_embeddings)

__all__ = [
    "FLIP_MODES", "extract_embeddings",
    "PROTOCOLS", "Protocol", "VerificationResult", "contiguous_folds", "evaluate_verification", "get_protocol",
    "pair_scores", "verify_embeddings", "correct_from_hex",
    "TAR_METHODS", "auc", "far_resolution", "roc_curve", "tar_at_far",
    "IJBResult", "evaluate_templates", "image_features", "template_features", "template_pair_scores",
    "IdentificationResult", "cmc", "evaluate_identification", "probe_ranks",
    "Interval", "PairedTest", "bootstrap_accuracy_ci", "compare", "fold_ci", "mcnemar_test", "paired_bootstrap",
    "t_quantile",
]
