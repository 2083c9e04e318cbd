"""Analytic figures and check values that need no training.

Functions over numpy arrays plus plotting functions that return a :class:`matplotlib.figure.Figure` for the
book. A formula that a head implements is never restated here: the analysis calls the head's own function on
float64 tensors (converting at its boundary, :mod:`fr.analysis._tensor`) and reads the head's defaults from the
registry (:func:`fr.heads.head_defaults`), so a figure cannot drift from the head that is trained.


* :mod:`fr.analysis.smaface` — SMAFace mining weights, scaling terms, heatmaps (Figures 2–12);
* :mod:`fr.analysis.recurricular` — ReCurricularFace Figure 1 crossings, eq. 2 (with a Monte-Carlo check), eq. 3–6;
* :mod:`fr.analysis.sface` — SFace re-scale curves and gradient magnitudes;
* :mod:`fr.analysis.elastic` — ElasticFace margin pdfs, decision boundaries, "+" assignment;
* :mod:`fr.analysis.magface` — MagFace m(a), g(a), the λ_g bound and the optimal norm;
* :mod:`fr.analysis.adaface` — AdaFace margin map;
* :mod:`fr.analysis.sphereface` — SphereFace ψ(θ) and the λ schedule;
* :mod:`fr.analysis.harmonic` — harmonic (cosine-distance) versus softmax probabilities.

Import the submodules directly (``from fr.analysis import smaface``); nothing is imported eagerly here.
"""

__all__ = ["adaface", "elastic", "harmonic", "magface", "recurricular", "sface", "smaface", "sphereface"]
