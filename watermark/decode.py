"""Decoding: stage 0 at the untouched geometry, then the search's candidates, each decoded
into a short list of words checked against the CRC, within the ``DetectConfig``'s budget of
CRC checks (the false-payload bound)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from watermark import ecc
from watermark._pattern import LAYOUT_ROWS, keyed_mask
from watermark.config import DetectConfig
from watermark.payload import INFO_BITS, WatermarkPayload
from watermark.search import (
    Candidate,
    Geometry,
    PilotTemplates,
    correlate,
    decodability_z,
    distinct,
    pilot_templates,
    refine,
    refine_scale,
    rerank,
    scan,
    search_scales,
    unmoved_candidates,
)
from watermark.signal import K_FINE, cell_scores, resample

_VIEW_NAMES = ("per-frame", "plain", "per-frame, whitened once")  # the accumulator's views, in order
_DEFAULT = DetectConfig()
MAX_CRC_CHECKS = _DEFAULT.max_crc_checks  # 16: the false-payload bound's factor


@dataclass(frozen=True)
class Detection:
    """What the detector found. ``payload`` is None unless a candidate passed the CRC.

    ``confidence`` is 2 * (fraction of coded-bit scores that agree with the re-encoded
    payload) - 1: 1.0 is a clean read, values near 0 are a barely-decodable one.
    ``bit_scores`` are the soft scores of the 216 coded bits at the chosen geometry.
    """

    payload: int | None
    confidence: float
    bit_scores: NDArray[Any]
    details: dict[str, Any] = field(default_factory=dict)


View = NDArray[Any] | dict[int, NDArray[Any]]


def search_and_decode(work: View | list[View], *, key: bytes, details: dict[str, Any] | None = None,
                      rows: int | None = None, config: DetectConfig = _DEFAULT) -> Detection:
    """Find and decode the mark in an (aggregated) luma image, float32 (h, w), or in one
    image per layout (``{rows: image}``, e.g. the accumulator's pre-equalised averages), or
    in several such *views* of the same frames: candidates from all views compete on sync
    score for the same decode attempts, so the false-payload bound does not change.

    First the untouched geometry of layout ``rows`` (the copy's own, from its frame size;
    the small layout when not given), one word per view (``_unmoved_first``); then two search
    stages, each with its list sizes (``config.list_sizes``): upright copies at every scale
    first (almost every real copy), then small rotations near full size only if the first
    stage found nothing.
    """
    info = dict(details or {})
    n_coded = ecc.coded_length(INFO_BITS)
    views = [v if isinstance(v, dict) else {layout_rows: v for layout_rows in LAYOUT_ROWS}
             for v in (work if isinstance(work, list) else [work])]
    if max(float(np.std(w)) for works in views for w in works.values()) < 1e-3:
        info.update(reason="constant image", crc_checks=0)
        return Detection(None, 0.0, np.zeros(n_coded), info)
    templates = {rows: pilot_templates(key, rows) for rows in LAYOUT_ROWS}
    mask = keyed_mask(key)
    state: dict[str, Any] = {"attempts": 0, "checks": 0, "best_z": 0.0}
    early_words: set[bytes] = set()
    detection = _unmoved_first(views, templates, LAYOUT_ROWS[0] if rows is None else rows, mask, info, state,
                               early_words, config.unmoved_checks)
    if detection is not None:
        return detection
    stages = (((0.0,), config.min_scale), (tuple(a for a in config.angles if a), config.min_scale_rotated))
    for (angles, min_scale), list_sizes in zip(stages, config.list_sizes):
        upright = angles == (0.0,)
        candidates = scan(views, templates, angles, config.coarse, min_scale, config.upright_peaks if upright else 1,
                          config.margin)
        if upright:
            pool = candidates[: config.rerank] + unmoved_candidates(views, templates)
            candidates = distinct(rerank(views, templates, pool))[: len(list_sizes)]
        else:
            candidates = [c for c in distinct(candidates[: 4 * len(list_sizes)])[: len(list_sizes)] if c.z >= config.min_rotated_z]
        if candidates:
            info.setdefault("upright_z", candidates[0].z)
        for cand, list_size in zip(candidates, list_sizes):
            tpl = templates[cand.rows]
            scales = search_scales(cand.rows, config.min_scale)
            step = config.coarse * (scales[0] - scales[1])
            places = []  # every view is tried at the candidate's geometry
            for view in range(len(views)):
                refined = refine_scale(views[view][cand.rows], replace(cand, view=view), tpl, step, config)
                places += [(g, refined) for g in refine(views[view][cand.rows], refined, tpl, step, config)]
            places.sort(key=lambda p: -p[0].fit)
            detection = _decode(places, tpl, mask, info, state, config.plan(list_size),
                                set(early_words) if upright else None)
            if detection is not None:
                return detection
    info.update(sync_z=state["best_z"], attempts=state["attempts"], crc_checks=state["checks"])
    scores = state.get("scores", np.zeros(n_coded))
    return Detection(None, 0.0, scores, info)


def untouched(views: list[Any], tpl: PilotTemplates) -> list[tuple[NDArray[Any], NDArray[Any]]]:
    """For every view (an image, or one image per layout), its samples at ``K_FINE`` per cell
    of ``tpl``'s layout at the untouched geometry (scale 1, offset 0, upright) and the coded
    bits' soft scores there (``origin_scores``): what stage 0 decodes and ``confirms`` checks."""
    rows = tpl.layout.rows
    out = []
    for view in views:
        v = resample(view[rows] if isinstance(view, dict) else view, rows, 1.0, 0.0, K_FINE)
        out.append((v, cell_scores(v, tpl.layout, K_FINE, 0, 0)))
    return out


def _unmoved_first(views: list[dict[int, NDArray[Any]]], templates: dict[int, PilotTemplates], rows: int, mask: NDArray[Any],
                   info: dict[str, Any], state: dict[str, Any], checked: set[bytes], checks: int) -> Detection | None:
    """Stage 0: the untouched geometry (scale 1, offset 0, upright) of layout ``rows`` in the
    best ``checks`` views, best decodability first: the most likely word of each, one CRC check
    per distinct word (recorded in ``checked``). A Detection for the first that passes, else None and the
    search follows.

    It costs one resampling, one trellis pass and one decode per view (tens of milliseconds
    at 1080p, against a few hundred for the search). The decodability z is only the order:
    on a still dense texture after a tone edit the right word came from a view whose z was
    1.3, below views with nothing."""
    tpl = templates[rows]
    looks = [(decodability_z(scores), view, v) for view, (v, scores) in enumerate(untouched(views, tpl))]
    looks.sort(key=lambda look: -look[0])
    info["unmoved_decodability_z"] = round(looks[0][0], 2)
    for z, view, v in looks[:checks]:
        sync = float(correlate(v, tpl, K_FINE, (0, 0), (0, 0))[0, 0])
        place = (Geometry(sync + z, v, 0, 0, sync, 1.0), Candidate(sync, rows, 1.0, 0.0, 0, 0, view))
        detection = _decode([place], tpl, mask, info, state, (1,), checked)
        if detection is not None:
            return detection
    return None


def _decode(places: list[tuple[Geometry, Candidate]], tpl: PilotTemplates, mask: NDArray[Any], info: dict[str, Any],
            state: dict[str, Any], plan: tuple[int, ...], checked: set[bytes] | None = None) -> Detection | None:
    """One decode attempt at a candidate: at most ``sum(plan)`` CRC checks, ``plan[i]`` of them
    at its ``i``-th best fine position (``places``, best first); a Detection for the first
    word that passes. A word already checked (in this attempt, or in ``checked``, which
    records what this attempt checks) is not checked (or counted) again."""
    state["attempts"] += 1
    checked = set() if checked is None else checked
    list_size = sum(plan)
    used = 0
    for (geometry, cand), size in zip(places, plan):
        size = min(size, list_size - used)
        if size <= 0:
            break
        scores = cell_scores(geometry.v, tpl.layout, K_FINE, geometry.dy, geometry.dx)
        scores = scores / (float(np.std(scores)) + 1e-12)
        words = ecc.decode_list(scores, INFO_BITS, size)
        if cand.z > state["best_z"]:
            state.update(best_z=cand.z, scores=scores)
            info["best_effort_bits"] = (words[0] ^ mask)[:48]
        for rank, bits in enumerate(words):
            if bits.tobytes() in checked:
                continue
            checked.add(bits.tobytes())
            used += 1
            state["checks"] += 1
            found = WatermarkPayload.from_info_bits(bits, mask)
            if found is None:
                continue
            codeword = ecc.encode(bits).astype(np.float64) * 2 - 1
            agree = float(np.mean(np.sign(scores) == codeword))
            info.update(view=_VIEW_NAMES[cand.view], rows=cand.rows, scale=round(geometry.scale, 4),
                        angle=cand.angle, offset=(geometry.dy / K_FINE, geometry.dx / K_FINE), sync_z=cand.z,
                        attempts=state["attempts"], crc_checks=state["checks"], list_rank=rank)
            return Detection(found.value, max(0.0, 2 * agree - 1), scores, info)
    return None
