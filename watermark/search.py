"""Geometry search: where (layout, scale, rotation, offset) a copy shows the mark.

The pilot cells' whitened template is cross-correlated with the resampled working image by
FFT over every offset a crop allows; the peak's normalised height ``z`` ranks candidates, and
the data cells' energy and decodability (``fit``) re-rank the best of them without a CRC check.
The search's budget is a ``DetectConfig``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import fft as sp_fft

from watermark import ecc
from watermark._pattern import Layout, make_layout, render_cells
from watermark.config import DetectConfig
from watermark.payload import INFO_BITS
from watermark.signal import K_FINE, K_SEARCH, cell_scores, cell_sums, padded, resample, whiten

# Mean and spread of ecc.best_path_metric on 216 independent N(0, 1) scores scaled to unit
# spread, as decodability_z scales them (tests/test_watermark_core.py re-measures them).
_PATH_MEAN, _PATH_SD = 131.8, 2.16


@dataclass(frozen=True)
class Candidate:
    """A search hit: pilot z at a layout, scale, angle and offset (samples at ``K_SEARCH`` per cell)."""

    z: float
    rows: int
    scale: float
    angle: float
    dy: int
    dx: int
    view: int = 0  # which aggregate of the frames it was found in (see ``search_and_decode``)


def search_scales(rows: int, min_scale: float) -> NDArray[Any]:
    """The scales a layout is searched at, from 1 down to ``min_scale``."""
    step = 0.64 / rows  # keeps the scale error below ~0.3 cell across the frame
    return np.arange(1.0, min_scale - 1e-9, -step)


class PilotTemplates:
    """Whitened pilot renderings of one layout at search and decode sampling (cached)."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.pilot = {
            k: whiten(render_cells(layout.pilot, layout.rows * k, layout.cols * k), k) for k in (K_SEARCH, K_FINE)
        }
        self.pilot_power = {k: float(np.mean(p**2)) for k, p in self.pilot.items()}
        self._spectra: dict[tuple[int, ...], NDArray[Any]] = {}

    def region_spectrum(self, k: int, top: int, left: int, shape: tuple[int, int]) -> NDArray[Any]:
        """rfft2 of pilot[top:top+h, left:left+w] (zeros outside the pilot), cached."""
        key = (k, top, left, *shape)
        if key not in self._spectra:
            if len(self._spectra) > 1024:  # frame sizes vary between calls; keep memory bounded
                self._spectra.clear()
            self._spectra[key] = sp_fft.rfft2(padded(self.pilot[k], top, left, *shape))
        return self._spectra[key]


@lru_cache(maxsize=8)
def pilot_templates(key: bytes, rows: int) -> PilotTemplates:
    return PilotTemplates(make_layout(key, rows))


def correlate(v: NDArray[Any], tpl: PilotTemplates, k: int, dy_range: tuple[int, int], dx_range: tuple[int, int]) -> NDArray[Any]:
    """Normalised ``sum(v * pilot[dy:, dx:])`` for every offset in the (inclusive) ranges.

    A circular FFT correlation of the size of the template region is exact for these
    offsets (no index wraps), and half the size of a linear one; the region's transform
    is cached because the rotation stage revisits the same scales.
    """
    hv, wv = v.shape
    n_dy, n_dx = dy_range[1] - dy_range[0] + 1, dx_range[1] - dx_range[0] + 1
    shape = (sp_fft.next_fast_len(n_dy + hv - 1, real=True), sp_fft.next_fast_len(n_dx + wv - 1, real=True))
    spectrum = tpl.region_spectrum(k, dy_range[0], dx_range[0], shape)
    corr = sp_fft.irfft2(spectrum * np.conj(sp_fft.rfft2(v, shape)), shape)[:n_dy, :n_dx]
    norm = float(np.sqrt(np.sum(v * v) * tpl.pilot_power[k])) + 1e-12
    z: NDArray[Any] = corr / norm
    return z


def offset_ranges(shape: tuple[int, ...], rows: int, scale: float, k: int, margin: int) -> tuple[tuple[int, int], tuple[int, int]]:
    hv, wv = shape
    free_y = rows * k - hv
    free_x = int(round(wv / scale)) - wv
    return (-margin, max(free_y, 0) + margin), (-margin, max(free_x, 0) + margin)


def scan(views: list[dict[int, NDArray[Any]]], templates: dict[int, PilotTemplates], angles: tuple[float, ...],
         coarse: int, min_scale: float, peaks: int, margin: int) -> list[Candidate]:
    """The ``peaks`` best pilot hits for every view, layout, scale (every ``coarse``-th) and
    angle, best first."""
    found: list[Candidate] = []
    for view, works in enumerate(views):
        for rows, tpl in templates.items():
            scales = search_scales(rows, min_scale)[::coarse]
            for scale in scales[scales >= min_scale - 1e-9]:
                for angle in angles:
                    for hit in _best_offsets(works[rows], tpl, float(scale), angle, margin, peaks):
                        found.append(Candidate(hit.z, hit.rows, hit.scale, hit.angle, hit.dy, hit.dx, view))
    found.sort(key=lambda c: -c.z)
    return found


def _best_offsets(work: NDArray[Any], tpl: PilotTemplates, scale: float, angle: float, margin: int,
                  peaks: int = 1) -> list[Candidate]:
    """The ``peaks`` highest pilot correlation peaks at one scale and angle (each the maximum
    of its 3 x 3 neighbourhood), best first; offsets reach ``margin`` samples past the edges."""
    rows = tpl.layout.rows
    v = resample(work, rows, scale, angle, K_SEARCH)
    dyr, dxr = offset_ranges(v.shape, rows, scale, K_SEARCH, margin)
    zmap = correlate(v, tpl, K_SEARCH, dyr, dxr)
    hits = []
    for n in range(peaks):
        iy, ix = np.unravel_index(int(np.argmax(zmap)), zmap.shape)
        hits.append(Candidate(float(zmap[iy, ix]), rows, scale, angle, int(iy + dyr[0]), int(ix + dxr[0])))
        if n + 1 < peaks:
            zmap = zmap.copy() if n == 0 else zmap
            zmap[max(0, iy - 1) : iy + 2, max(0, ix - 1) : ix + 2] = -np.inf
    return hits


def _coarse_scores(work: NDArray[Any], cand: Candidate, tpl: PilotTemplates) -> tuple[NDArray[Any], NDArray[Any]]:
    """Every coded bit's soft score at a search candidate (``K_SEARCH`` samples per cell) and the sum of
    its cells' squared terms, float64 (N_CODED,) each."""
    layout, k = tpl.layout, K_SEARCH
    v = resample(work, layout.rows, cand.scale, cand.angle, k)
    cols = int(np.clip(-(-(v.shape[1] + cand.dx) // k), 1, layout.cols))
    cells = cell_sums(padded(v, -cand.dy, -cand.dx, layout.rows * k, cols * k), layout.rows, cols, k)
    bit_index = layout.bit_index[:, :cols]
    data = bit_index >= 0
    w = (cells * layout.chips[:, :cols])[data]
    n_coded = ecc.coded_length(INFO_BITS)
    return (np.bincount(bit_index[data], weights=w, minlength=n_coded),
            np.bincount(bit_index[data], weights=w * w, minlength=n_coded))


def data_energy_z(score: NDArray[Any], power: NDArray[Any]) -> float:
    """How far the data cells' energy stands above chance, in standard deviations (about
    N(0, 1) on unmarked content), from ``_coarse_scores``.

    The pilot is a quarter of the mark; the data cells carry the rest, with signs that depend
    on the unknown payload, so their soft scores are used without signs: with each cell's
    chip-weighted sum ``w`` and each coded bit's score ``s = sum(w)``, unmarked content gives
    ``E[s**2] = sum(w**2)`` whatever the host (the chips are keyed random signs), and a mark
    raises ``sum(s**2)`` above it. At the right geometry of 256 px copies after crop + H.264
    it scored 3 to 6.
    """
    return float((np.sum(score**2) - np.sum(power)) / (np.sqrt(2.0 * np.sum(power**2)) + 1e-12))


def decodability_z(score: NDArray[Any]) -> float:
    """How much better than chance the best trellis path fits the soft scores, in standard
    deviations (``ecc.best_path_metric`` of the scores scaled to unit spread; on independent
    N(0, 1) scores that metric has mean ``_PATH_MEAN`` and spread ``_PATH_SD``).

    Unlike the data energy, this sees the code's structure, so it also rises on a still host
    where the informed embedder has cancelled the host's projection on every bit: on a
    dense-texture still photo it scored 7.0 at the true geometry (data energy -0.9) while
    the pilot ranked noise peaks above it.
    """
    metric = ecc.best_path_metric(score / (float(np.std(score)) + 1e-12), INFO_BITS)
    return (metric - _PATH_MEAN) / _PATH_SD


def _fit(work: NDArray[Any], cand: Candidate, tpl: PilotTemplates) -> float:
    """How well a search candidate fits a mark: pilot z plus the data energy z and the
    decodability z where those are positive. None of it needs a CRC check, so ranking by it
    leaves the false-payload bound alone. Rewards only, never penalties: on a still host the
    informed embedder leaves per-bit sums *below* chance (a data energy of -1.7 at the true
    geometry of one such photo)."""
    score, power = _coarse_scores(work, cand, tpl)
    return cand.z + max(0.0, data_energy_z(score, power)) + max(0.0, decodability_z(score))


def rerank(views: list[dict[int, NDArray[Any]]], templates: dict[int, PilotTemplates], found: list[Candidate]) -> list[Candidate]:
    """Candidates best first by ``_fit``. After crop + H.264 the right geometry of a 256 px
    copy, and on a still dense-texture photo even unattacked, can rank below noise peaks on
    the pilot alone (26th of the pilot's candidates on one animated-face clip)."""
    fits = [(_fit(views[c.view][c.rows], c, templates[c.rows]), i) for i, c in enumerate(found)]
    return [found[i] for _, i in sorted(fits, key=lambda t: (-t[0], t[1]))]


def refine_scale(work: NDArray[Any], cand: Candidate, tpl: PilotTemplates, step: float, config: DetectConfig) -> Candidate:
    """Best by ``_fit`` of the coarse hit and scales a quarter and half a coarse step to either
    side (on a still busy host the pilot alone moved one clip's true scale 1.0 to 0.99)."""
    best, best_fit = cand, _fit(work, cand, tpl)
    for delta in (-0.5, -0.25, 0.25, 0.5):
        scale = cand.scale + delta * step
        if config.min_scale - step <= scale <= 1.0 + step:
            trial = _best_offsets(work, tpl, scale, cand.angle, config.margin)[0]
            trial = Candidate(trial.z, trial.rows, trial.scale, trial.angle, trial.dy, trial.dx, cand.view)
            fit = _fit(work, trial, tpl)
            if fit > best_fit:
                best, best_fit = trial, fit
    return best


@dataclass
class Geometry:
    """One fine-grained decode position: ``K_FINE`` samples ``v`` at a scale, and an offset."""

    fit: float  # pilot z + decodability z (what ranks geometries)
    v: NDArray[Any]
    dy: int
    dx: int
    z: float
    scale: float


def refine(work: NDArray[Any], cand: Candidate, tpl: PilotTemplates, step: float, config: DetectConfig) -> list[Geometry]:
    """Re-sample at ``K_FINE`` per cell and re-locate the pilot within a cell of the coarse hit,
    over scales within ``config.fine_span`` coarse steps (``step``) of it; every position looked at,
    best first.

    The coarse z is flat over a few scale steps, and after crop + H.264 its peak can sit a
    step off (242 px copies of 256 px clips peaked at 0.93 instead of 0.945: a cell of
    error across the frame, which the decoder does not survive); the finer sampling's z
    peaks at the right scale. Each scale's pilot peak is judged with the decodability of the
    bits there, as in the search.
    """
    ratio = K_FINE // K_SEARCH
    dyr = (cand.dy * ratio - ratio - 1, cand.dy * ratio + ratio + 1)
    dxr = (cand.dx * ratio - ratio - 1, cand.dx * ratio + ratio + 1)
    found: list[tuple[Geometry, NDArray[Any]]] = []
    for offset in np.arange(-config.fine_span, config.fine_span + 1e-9, config.fine_step):
        scale = cand.scale + float(offset) * step
        if scale > 1.0 + 1e-9:
            continue
        v = resample(work, cand.rows, scale, cand.angle, K_FINE)
        zmap = correlate(v, tpl, K_FINE, dyr, dxr)
        iy, ix = np.unravel_index(int(np.argmax(zmap)), zmap.shape)
        y, x = int(iy + dyr[0]), int(ix + dxr[0])
        fit = float(zmap[iy, ix]) + decodability_z(cell_scores(v, tpl.layout, K_FINE, y, x))
        found.append((Geometry(fit, v, y, x, float(zmap[iy, ix]), scale), zmap))
    assert found  # offset 0 keeps the coarse scale, which is at most 1
    found.sort(key=lambda g: -g[0].fit)
    best, zmap = found[0]
    # The pilot's peak can sit a quarter cell off when the host is still and busy: the
    # offsets next to the best peak are positions of their own, judged the same way.
    result = [g for g, _ in found]
    for y in (best.dy - 1, best.dy, best.dy + 1):
        for x in (best.dx - 1, best.dx, best.dx + 1):
            if (y, x) != (best.dy, best.dx) and dyr[0] <= y <= dyr[1] and dxr[0] <= x <= dxr[1]:
                z = float(zmap[y - dyr[0], x - dxr[0]])
                fit = z + decodability_z(cell_scores(best.v, tpl.layout, K_FINE, y, x))
                result.append(Geometry(fit, best.v, y, x, z, best.scale))
    result.sort(key=lambda g: -g.fit)
    return result


def unmoved_candidates(views: list[dict[int, NDArray[Any]]], templates: dict[int, PilotTemplates]) -> list[Candidate]:
    """The geometry of an unscaled, uncropped copy (scale 1, offset 0, upright) in every view
    and layout, which always joins the re-ranking: it is the most common copy (the studio's
    own read-back, a file passed on as is), and on a still dense-texture photo the pilot alone
    can rank it below the 32 candidates re-ranked (an animated face over a tissue micrograph:
    the right word was the best at this geometry, its pilot z 4.4 against noise peaks of 6.2)."""
    found = []
    for view, works in enumerate(views):
        for rows, tpl in templates.items():
            v = resample(works[rows], rows, 1.0, 0.0, K_SEARCH)
            z = float(correlate(v, tpl, K_SEARCH, (0, 0), (0, 0))[0, 0])
            found.append(Candidate(z, rows, 1.0, 0.0, 0, 0, view))
    return found


def distinct(found: list[Candidate]) -> list[Candidate]:
    """``found`` without candidates at (nearly) the geometry of a better one: the views see
    the same frames, so one geometry often tops both, and every view is tried at decode time
    anyway (``search_and_decode``)."""
    kept: list[Candidate] = []
    for c in found:
        if not any(k.rows == c.rows and k.angle == c.angle and abs(k.scale - c.scale) < 1e-6
                   and abs(k.dy - c.dy) <= 1 and abs(k.dx - c.dx) <= 1 for k in kept):
            kept.append(c)
    return kept
