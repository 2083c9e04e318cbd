"""Evaluation: embedding extraction, 1:1 verification protocols, TAR@FAR, all-pairs pooled TAR@FAR, IJB-style
templates, rank-N identification, the whole suite from one embedding pass, and the statistics to tell a real gap
from noise.

>>> vset = fr.data.load_bin(fr.data.find_bin("lfw"))
>>> res = fr.eval.evaluate_verification(model, vset, protocol="insightface", flip="sum")
>>> res.summary()          # 'lfw: 99.50 ± 0.30 % (std) [insightface/sqL2/10fold/flip-sum, 6000 pairs]'
>>> fr.eval.compare(res, other)["mcnemar"].p_value
>>> suite = fr.eval.evaluate_suite(model, flip="sum")   # lfw/cfp 10-fold, all-pairs TAR@FAR, rank-N
>>> print(suite.summary())
"""
from __future__ import annotations

from .allpairs import ALLPAIRS_FARS, AllPairsResult, all_pairs_verification
from .calibration import PixelFeatures
from .embed import FLIP_MODES, extract_embeddings, fold_batchnorm, inference_model
from .identification import IdentificationResult, cmc, evaluate_identification, probe_ranks
from .ijb import IJBResult, evaluate_templates, image_features, template_features, template_pair_scores
from .roc import TAR_METHODS, auc, far_resolution, roc_curve, tar_at_far
from .stats import (Interval, PairedTest, bootstrap_accuracy_ci, compare, fold_ci, mcnemar_test,
                    paired_bootstrap, t_quantile)
from .suite import (DEFAULT_PROTOCOLS, SUITE_PROTOCOLS, SuiteData, SuiteResult, evaluate_features, evaluate_suite,
                    prepare_suite)
from .verification import (PROTOCOLS, Protocol, VerificationResult, contiguous_folds, correct_from_hex,
                           evaluate_verification,
                           get_protocol, pair_scores, verify_embeddings)

__all__ = [
    "FLIP_MODES", "extract_embeddings", "fold_batchnorm", "inference_model",
    "PROTOCOLS", "Protocol", "VerificationResult", "contiguous_folds", "evaluate_verification", "get_protocol",
    "pair_scores", "verify_embeddings", "correct_from_hex",
    "TAR_METHODS", "auc", "far_resolution", "roc_curve", "tar_at_far",
    "IJBResult", "evaluate_templates", "image_features", "template_features", "template_pair_scores",
    "IdentificationResult", "cmc", "evaluate_identification", "probe_ranks",
    "ALLPAIRS_FARS", "AllPairsResult", "all_pairs_verification",
    "DEFAULT_PROTOCOLS", "SUITE_PROTOCOLS", "SuiteData", "SuiteResult", "evaluate_features", "evaluate_suite",
    "prepare_suite", "PixelFeatures",
    "Interval", "PairedTest", "bootstrap_accuracy_ci", "compare", "fold_ci", "mcnemar_test", "paired_bootstrap",
    "t_quantile",
]
