"""Small plotting helpers shared by the analysis modules.

Every plotting function in :mod:`fr.analysis` returns a :class:`matplotlib.figure.Figure` built without
pyplot, so nothing accumulates in pyplot's global state (a notebook displays the returned object; a
script calls ``fig.savefig``). No backend is selected here.
"""
from __future__ import annotations

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

#: Colour used for the "correctly classified, no penalty needed" region of the SMAFace heatmaps
#: (the paper paints it blue).
CORRECT_COLOUR = "#3b6fb6"


def new_figure(nrows: int = 1, ncols: int = 1, *, width: float = 4.0, height: float = 3.2, squeeze=True,
               **subplot_kw):
    """A constrained-layout ``Figure`` and its axes (``width``/``height`` per panel, in inches)."""
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=squeeze, subplot_kw=subplot_kw or None)
    return fig, axes


def heatmap(ax, x, y, z, *, mask=None, cmap="inferno", vmin=None, vmax=None, title=None, xlabel=None,
            ylabel=None, colorbar=True):
    """Draw ``z`` (shape ``(len(y), len(x))``) over the grid; cells where ``mask`` is true are painted
    in :data:`CORRECT_COLOUR` instead of the colour map. Returns the image artist."""
    z = np.asarray(z, dtype=float)
    extent = (float(x[0]), float(x[-1]), float(y[0]), float(y[-1]))
    shown = np.ma.masked_array(z, mask=mask if mask is not None else np.zeros_like(z, dtype=bool))
    finite = shown.compressed()
    finite = finite[np.isfinite(finite)]
    if vmin is None:
        vmin = float(np.percentile(finite, 1)) if finite.size else 0.0
    if vmax is None:
        vmax = float(np.percentile(finite, 99)) if finite.size else 1.0
    im = ax.imshow(shown, origin="lower", extent=extent, aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax,
                   interpolation="nearest")
    if mask is not None and np.any(mask):
        overlay = np.ma.masked_array(np.ones_like(z), mask=~np.asarray(mask, dtype=bool))
        ax.imshow(overlay, origin="lower", extent=extent, aspect="auto",
                  cmap=ListedColormap([CORRECT_COLOUR]), vmin=0, vmax=1, interpolation="nearest")
    if colorbar:
        ax.figure.colorbar(im, ax=ax, shrink=0.85)
    if title:
        ax.set_title(title, fontsize=9)
    if xlabel:
        ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    return im
