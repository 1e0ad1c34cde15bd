"""Numba kernels of the compiler: partitioning into boxes, packing, duplication and PPA, over plain arrays.

Everything here is ``@njit(cache=True)`` and works on integer/float arrays only, so one compile + PPA of a
network is a single call without Python objects. The conventions are documented in
:mod:`rnc.simulator.compiler` and ``docs/simulator.md``; this module only implements them.

Packing is MaxRects (Jylänki, "A Thousand Ways to Pack the Bin", 2010) with best-short-side-fit over all
open crossbars of the box's crossbar size (boxes of different sizes never share a crossbar). Boxes are not
rotated (rows are inputs, columns outputs).
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from rnc.simulator import ppa as _ppa
from rnc.simulator.ppa import (
    PARAM_ADC_GSPS,
    PARAM_ADCS,
    PARAM_AREA_IMA,
    PARAM_AREA_TILE,
    PARAM_AREA_XBAR_CELL,
    PARAM_E_CELL,
    PARAM_E_COLUMN,
    PARAM_E_ROW,
    PARAM_E_WORD,
    PARAM_IMAS_PER_TILE,
    PARAM_INPUT_BITS,
    PARAM_LEAK_IMA_MW,
    PARAM_LEAK_TILE_MW,
    PARAM_READ_NS,
    PARAM_READS_PER_INPUT,
    PARAM_REF_CELLS,
    PARAM_WORD_BITS,
    PARAM_XBARS_PER_IMA,
)

# Numba's on-disk cache (cache=True) is keyed on this file's source alone, yet the kernels freeze the PARAM_*
# indices they import from rnc.simulator.ppa into the cached machine code: renumbering them there would leave the
# cache reading the wrong parameters (a latency off by 100x was seen). So the layout is spelt out here as well and
# checked at import; changing it means editing this file, which invalidates the cache.
PARAM_LAYOUT = (
    "PARAM_READ_NS", "PARAM_ADCS", "PARAM_ADC_GSPS", "PARAM_READS_PER_INPUT", "PARAM_INPUT_BITS", "PARAM_E_CELL",
    "PARAM_E_ROW", "PARAM_E_COLUMN", "PARAM_E_WORD", "PARAM_WORD_BITS", "PARAM_LEAK_IMA_MW", "PARAM_LEAK_TILE_MW",
    "PARAM_AREA_IMA", "PARAM_AREA_TILE", "PARAM_AREA_XBAR_CELL", "PARAM_XBARS_PER_IMA", "PARAM_IMAS_PER_TILE",
    "PARAM_REF_CELLS",
)
_ppa_layout = tuple(sorted((n for n in vars(_ppa) if n.startswith("PARAM_")), key=lambda n: getattr(_ppa, n)))
if _ppa_layout != PARAM_LAYOUT or [getattr(_ppa, n) for n in PARAM_LAYOUT] != list(range(len(PARAM_LAYOUT))):
    raise ImportError(
        "rnc.simulator.ppa's PARAM_* indices differ from rnc.simulator.kernels.PARAM_LAYOUT: update the layout "
        "in kernels.py too (that also refreshes Numba's on-disk cache of the kernels)"
    )

MAX_FREE = 12  # free rectangles kept per crossbar (MaxRects); dropping the smallest only loses packing quality
SOFT_PENALTY = 1 << 40  # score added to a crossbar that already holds a box of the same layer (soft conflict)

# indices of the totals array returned by compile_kernel
(
    T_FEASIBLE, T_MIN_CROSSBARS, T_CROSSBARS_USED, T_USED_CELLS, T_CAPACITY_CELLS, T_LATENCY_NS, T_PERIOD_NS,
    T_N_CELL_READS, T_N_ROW_DRIVES, T_N_COLUMN_CONVERTS, T_N_WORDS, T_N_DIGITAL_OPS, T_LEAKAGE_MW, T_AREA_MM2,
    T_MACS, T_IMAS, T_TILES,
) = range(17)
# the event counts in the order of rnc.simulator.ppa.EVENTS (array_read counted per active cell-read)
T_EVENTS = (T_N_CELL_READS, T_N_ROW_DRIVES, T_N_COLUMN_CONVERTS, T_N_WORDS, T_N_DIGITAL_OPS)
N_TOTALS = 17

# columns of the per-layer table returned by compile_kernel
(
    L_COPIES, L_CROSSBARS, L_BOXES, L_CELLS, L_STAGE_NS, L_START_NS, L_FINISH_NS, L_ENERGY_PJ, L_SEQ,
    L_CLASS,
) = range(10)
N_LAYER_COLS = 10


@intrinsic
def _v(typingctx, arr):
    """``arr`` as a borrowed view: the same data, shape and strides, with no reference (null meminfo).

    Numba increfs every array argument when a jitted function is entered and decrefs it on return, an atomic
    update each time; in the placement loops, which call small helpers with up to 30 arrays per box, those
    updates took about 40% of a compile (``perf``, mobilenet_v3_small). A view passed instead costs a null
    check. Safe only while the owner stays alive for the whole call: the owner must be a function argument, a
    variable used again after the call, or one carried around the enclosing loop (Numba frees a variable
    right after its last use). Never returned, stored or grown.
    """
    if not isinstance(arr, types.Array):
        return None

    def codegen(context, builder, sig, args):
        view = cgutils.create_struct_proxy(sig.return_type)(context, builder, value=args[0])
        view.meminfo = cgutils.get_null_value(view.meminfo.type)
        view.parent = cgutils.get_null_value(view.parent.type)
        return view._getvalue()

    return arr(arr), codegen


# ------------------------------------------------------------------------------------------------------
# Partitioning
# ------------------------------------------------------------------------------------------------------

@njit(cache=True)
def _ceil_div(a, b):
    return (a + b - 1) // b


@njit(cache=True)
def _dw_shape(layer, rows, cols_per_group, groups, xr, xc, slices, dw_chunks, dw_block):
    """Depthwise mapping of ``layer``: (chunks, base channels per chunk, extra, block, per_ch)."""
    R, C = xr[layer], xc[layer]
    g = groups[layer]
    per_ch = cols_per_group[layer] * slices  # columns of one channel (channel multiplier x slices)
    per_xbar = max(1, C // per_ch)
    chunks = min(g, max(dw_chunks[layer], _ceil_div(g, per_xbar)))
    base, extra = g // chunks, g % chunks
    k2 = rows[layer]
    blk = 1
    if k2 <= R:
        widest = base + (1 if extra > 0 else 0)
        blk = max(1, min(dw_block[layer], R // k2, widest))
        blk = _ceil_div(widest, _ceil_div(widest, blk))  # the same reads per position with the fewest zeros
    return chunks, base, extra, blk, per_ch


@njit(cache=True)
def partition_boxes(rows, cols_per_group, groups, in_channels, xr, xc, slices, rnc_mapping, dw_chunks, dw_block):
    """Boxes of one copy of every layer.

    A layer is a set of weight matrices, each partitioned into crossbar-sized boxes (row blocks x column
    blocks). ``isaac`` mapping (``rnc_mapping=False``): one matrix per group of ``rows x cols_per_group *
    slices`` cells. ``rnc`` mapping: a depthwise layer (groups == in_channels > 1) of ``C`` channels is split
    into ``chunks = max(dw_chunks, ceil(C / channels_per_crossbar))`` column chunks of consecutive channels
    (``multiplier * slices`` columns per channel, ``multiplier = Cout / C``). A chunk of ``n`` channels with
    block ``b = dw_block`` (at most ``rows // (K*K)`` and ``n``) is one box of ``b*K*K`` rows x ``n``
    channels' columns: channel ``j`` on row block ``j mod b`` and its own columns, so ``b`` consecutive
    channels lie on disjoint rows and columns and are read together: ``ceil(n / b)`` reads per position.
    ``b = 1`` is RNC's channel-serial mapping (``K*K`` rows, one channel per read), ``b > 1`` the
    block-diagonal one (the off-diagonal cells hold zeros), ``chunks = C`` ISAAC's fully parallel one. Other
    layers as in ``isaac``.

    Returns per-box ``layer, group, h, w, active_w, row0, col0`` (row/column offset inside the matrix),
    ``seq`` (reads per output position) and ``blk`` (weight cells = ``h * w / blk``), the CSR pointer of
    each layer's boxes and each layer's ``seq`` (the largest over its boxes).
    """
    n = rows.shape[0]
    seq = np.ones(n, np.int64)
    counts = np.zeros(n, np.int64)
    for layer in range(n):
        R, C = xr[layer], xc[layer]
        g = groups[layer]
        if rnc_mapping and g > 1 and g == in_channels[layer]:
            chunks, base, extra, blk, per_ch = _dw_shape(layer, rows, cols_per_group, groups, xr, xc, slices,
                                                         dw_chunks, dw_block)
            seq[layer] = _ceil_div(base + (1 if extra > 0 else 0), blk)
            rb = _ceil_div(rows[layer] * blk, R)
            total = 0
            for k in range(chunks):
                ch = base + (1 if k < extra else 0)
                total += rb * _ceil_div(ch * per_ch, C)
            counts[layer] = total
        else:
            counts[layer] = g * _ceil_div(rows[layer], R) * _ceil_div(cols_per_group[layer] * slices, C)
    ptr = np.zeros(n + 1, np.int64)
    for layer in range(n):
        ptr[layer + 1] = ptr[layer] + counts[layer]
    nb = ptr[n]
    b_layer = np.empty(nb, np.int64)
    b_group = np.empty(nb, np.int64)
    b_h = np.empty(nb, np.int64)
    b_w = np.empty(nb, np.int64)
    b_act = np.empty(nb, np.int64)
    b_row0 = np.empty(nb, np.int64)
    b_col0 = np.empty(nb, np.int64)
    b_seq = np.ones(nb, np.int64)
    b_blk = np.ones(nb, np.int64)
    for layer in range(n):
        R, C = xr[layer], xc[layer]
        g = groups[layer]
        depthwise = rnc_mapping and g > 1 and g == in_channels[layer]
        k = ptr[layer]
        per_ch = cols_per_group[layer] * slices
        blk = 1
        if depthwise:
            mats, base, extra, blk, per_ch = _dw_shape(layer, rows, cols_per_group, groups, xr, xc, slices,
                                                       dw_chunks, dw_block)
        else:
            base, extra = 0, 0
            mats = g
        H = rows[layer] * blk
        for m in range(mats):
            ch = base + (1 if m < extra else 0)
            b = min(blk, ch) if depthwise else 1
            W = ch * per_ch if depthwise else per_ch
            for i in range(_ceil_div(H, R)):
                h = min(R, H - i * R)
                if depthwise and b < blk:  # a short last chunk: fewer row blocks
                    h = rows[layer] * b
                for j in range(_ceil_div(W, C)):
                    w = min(C, W - j * C)
                    b_layer[k] = layer
                    b_group[k] = m
                    b_h[k] = h
                    b_w[k] = w
                    b_act[k] = min(w, per_ch * b) if depthwise else w
                    b_row0[k] = i * R
                    b_col0[k] = j * C
                    b_seq[k] = _ceil_div(ch, b) if depthwise else 1
                    b_blk[k] = b
                    k += 1
    return b_layer, b_group, b_h, b_w, b_act, b_row0, b_col0, b_seq, b_blk, ptr, seq


@njit(cache=True)
def _cycle_ns(active_w, params):
    adc_ns = _ceil_div(active_w, np.int64(params[PARAM_ADCS])) / params[PARAM_ADC_GSPS]
    return max(params[PARAM_READ_NS], adc_ns)


# ------------------------------------------------------------------------------------------------------
# Packing state (MaxRects over crossbars)
# ------------------------------------------------------------------------------------------------------

@njit(cache=True)
def _new_state(max_bins, n_layers):
    free = np.zeros((max_bins, MAX_FREE, 4), np.int64)  # x (col), y (row), w (cols), h (rows)
    nfree = np.zeros(max_bins, np.int64)
    maxw = np.zeros(max_bins, np.int64)
    maxh = np.zeros(max_bins, np.int64)
    bcls = np.full(max_bins, -1, np.int64)
    has = np.zeros((n_layers, max_bins), np.int32)  # boxes of each layer on each crossbar
    return free, nfree, maxw, maxh, bcls, has


@njit(cache=True)
def _refresh_max(free, nfree, maxw, maxh, b):
    mw = 0
    mh = 0
    for i in range(nfree[b]):
        if free[b, i, 2] > mw:
            mw = free[b, i, 2]
        if free[b, i, 3] > mh:
            mh = free[b, i, 3]
    maxw[b] = mw
    maxh[b] = mh


@njit(cache=True)
def _contains(scratch, i, j):
    """Is rectangle ``i`` of ``scratch`` inside rectangle ``j``?"""
    return (scratch[i, 0] >= scratch[j, 0] and scratch[i, 1] >= scratch[j, 1]
            and scratch[i, 0] + scratch[i, 2] <= scratch[j, 0] + scratch[j, 2]
            and scratch[i, 1] + scratch[i, 3] <= scratch[j, 1] + scratch[j, 3])


@njit(cache=True)
def _place(free, nfree, maxw, maxh, b, px, py, pw, ph, scratch):
    """Split every free rectangle of crossbar ``b`` that the placed box overlaps; prune contained ones.

    Untouched rectangles go first in ``scratch`` (they never contain one another), split pieces after them,
    so only pairs involving a new piece need the containment test.
    """
    n_old = 0
    for i in range(nfree[b]):
        rx, ry, rw, rh = free[b, i, 0], free[b, i, 1], free[b, i, 2], free[b, i, 3]
        if px >= rx + rw or px + pw <= rx or py >= ry + rh or py + ph <= ry:
            scratch[n_old, 0], scratch[n_old, 1], scratch[n_old, 2], scratch[n_old, 3] = rx, ry, rw, rh
            n_old += 1
    cnt = n_old
    for i in range(nfree[b]):
        rx, ry, rw, rh = free[b, i, 0], free[b, i, 1], free[b, i, 2], free[b, i, 3]
        if px >= rx + rw or px + pw <= rx or py >= ry + rh or py + ph <= ry:
            continue
        if px > rx:
            scratch[cnt, 0], scratch[cnt, 1], scratch[cnt, 2], scratch[cnt, 3] = rx, ry, px - rx, rh
            cnt += 1
        if px + pw < rx + rw:
            scratch[cnt, 0], scratch[cnt, 1], scratch[cnt, 2], scratch[cnt, 3] = px + pw, ry, rx + rw - px - pw, rh
            cnt += 1
        if py > ry:
            scratch[cnt, 0], scratch[cnt, 1], scratch[cnt, 2], scratch[cnt, 3] = rx, ry, rw, py - ry
            cnt += 1
        if py + ph < ry + rh:
            scratch[cnt, 0], scratch[cnt, 1], scratch[cnt, 2], scratch[cnt, 3] = rx, py + ph, rw, ry + rh - py - ph
            cnt += 1
    keep = scratch[:, 4]  # scratch column 4 is the keep flag (no allocation per placement)
    for i in range(cnt):
        keep[i] = 1
    for i in range(n_old, cnt):  # a new piece inside any other rectangle goes (first of identical ones stays)
        for j in range(cnt):
            if i != j and keep[j] != 0 and _contains(scratch, i, j):
                keep[i] = 0
                break
    for i in range(n_old):  # an old rectangle inside a surviving new piece goes
        for j in range(n_old, cnt):
            if keep[j] != 0 and _contains(scratch, i, j):
                keep[i] = 0
                break
    kept = 0
    for i in range(cnt):
        if keep[i] != 0:
            kept += 1
    if kept > MAX_FREE:  # keep the largest rectangles
        areas = np.empty(cnt, np.int64)
        for i in range(cnt):
            areas[i] = -scratch[i, 2] * scratch[i, 3] if keep[i] != 0 else 0
        order = np.argsort(areas, kind="mergesort")
        for i in range(MAX_FREE, cnt):
            keep[order[i]] = 0
    k = 0
    mw = 0
    mh = 0
    for i in range(cnt):
        if keep[i] != 0:
            free[b, k, 0], free[b, k, 1], free[b, k, 2], free[b, k, 3] = (
                scratch[i, 0], scratch[i, 1], scratch[i, 2], scratch[i, 3])
            mw = max(mw, scratch[i, 2])
            mh = max(mh, scratch[i, 3])
            k += 1
    nfree[b] = k
    maxw[b] = mw
    maxh[b] = mh


@njit(cache=True)
def _find(free, nfree, maxw, maxh, bcls, has, nopen, h, w, layer, cls, hard, first_fit):
    """Best-short-side-fit position among open crossbars of class ``cls``: (bin, x, y) or bin -1.

    ``first_fit``: take the first crossbar (lowest index) with room, best-short-side-fit inside it.
    """
    best_b = -1
    best_x = 0
    best_y = 0
    best_score = np.int64(1) << 62
    for b in range(nopen):
        if bcls[b] != cls or maxw[b] < w or maxh[b] < h:
            continue
        penalty = 0
        if has[layer, b] > 0:
            if hard:
                continue
            penalty = SOFT_PENALTY
        for i in range(nfree[b]):
            fw, fh = free[b, i, 2], free[b, i, 3]
            if fw >= w and fh >= h:
                lw, lh = fw - w, fh - h
                short = min(lw, lh)
                long = max(lw, lh)
                score = penalty + short * 100000 + long
                if score < best_score:
                    best_score = score
                    best_b = b
                    best_x = free[b, i, 0]
                    best_y = free[b, i, 1]
        if best_score == 0 or (first_fit and best_b >= 0):  # an exact fit without penalty: nothing beats it
            break
    return best_b, best_x, best_y


@njit(cache=True)
def _find_first(free, nfree, maxw, maxh, bcls, has, nopen, h, w, layer, cls, start):
    """First crossbar from ``start`` with room for the box and no box of ``layer`` (best-short-side-fit inside
    it): (bin, x, y, new_start). Crossbars only fill up while copies are added, so every crossbar rejected
    before the first fitting one stays rejected and ``new_start`` skips it next time."""
    prefix = True
    for b in range(start, nopen):
        fits = bcls[b] == cls and maxw[b] >= w and maxh[b] >= h and has[layer, b] == 0
        if fits:
            best_score = np.int64(1) << 62
            bx = -1
            by = -1
            for i in range(nfree[b]):
                fw, fh = free[b, i, 2], free[b, i, 3]
                if fw >= w and fh >= h:
                    lw, lh = fw - w, fh - h
                    score = min(lw, lh) * 100000 + max(lw, lh)
                    if score < best_score:
                        best_score = score
                        bx = free[b, i, 0]
                        by = free[b, i, 1]
            if bx >= 0:
                return b, bx, by, (b if prefix else start)
        if prefix:
            start = b + 1
    return -1, 0, 0, start


@njit(cache=True)
def _open(free, nfree, maxw, maxh, bcls, b, cls, cls_r, cls_c):
    bcls[b] = cls
    free[b, 0, 0], free[b, 0, 1], free[b, 0, 2], free[b, 0, 3] = 0, 0, cls_c[cls], cls_r[cls]
    nfree[b] = 1
    maxw[b] = cls_c[cls]
    maxh[b] = cls_r[cls]


# ------------------------------------------------------------------------------------------------------
# Whole-network packing
# ------------------------------------------------------------------------------------------------------

@njit(cache=True)
def _pack_base(order, b_layer, b_h, b_w, b_cls, cls_r, cls_c, share, state, scratch,
               pl_box, pl_bin, pl_x, pl_y, distinct, limit):
    """Place copy 0 of every box in ``order``; full-size boxes (or all boxes when not ``share``) alone.

    Stops when a box needs crossbar ``limit + 1`` (the packing can no longer use ``limit`` or fewer) and returns
    ``limit + 1``; the state then holds a partial packing over ``limit`` crossbars.

    Boxes of a layer with ``distinct[layer]`` never share a crossbar with each other (a new crossbar is opened
    instead); other layers' boxes avoid crossbars holding their layer but share one when nothing else fits."""
    free, nfree, maxw, maxh, bcls, has = state
    nopen = 0
    for t in range(order.shape[0]):
        k = order[t]
        layer, h, w, c = b_layer[k], b_h[k], b_w[k], b_cls[k]
        full = h == cls_r[c] and w == cls_c[c]
        b = -1
        x = 0
        y = 0
        if share and not full:
            b, x, y = _find(free, nfree, maxw, maxh, bcls, has, nopen, h, w, layer, c, distinct[layer], False)
        if b < 0:
            if nopen >= limit:  # one more crossbar: more than ``limit``, it cannot win
                return nopen + 1
            b = nopen
            nopen += 1
            _open(free, nfree, maxw, maxh, bcls, b, c, cls_r, cls_c)
            x = 0
            y = 0
        _place(free, nfree, maxw, maxh, b, x, y, w, h, scratch)
        if not share:
            nfree[b] = 0
            maxw[b] = 0
            maxh[b] = 0
        has[layer, b] += 1
        pl_box[t] = k
        pl_bin[t] = b
        pl_x[t] = x
        pl_y[t] = y
    return nopen


@njit(cache=True)
def _reset(state, nopen):
    _free, nfree, maxw, maxh, bcls, has = state
    for b in range(nopen):
        nfree[b] = 0
        maxw[b] = 0
        maxh[b] = 0
        bcls[b] = -1
        has[:, b] = 0


@njit(cache=True)
def _grow(a, n):
    out = np.empty(max(n, 2 * a.shape[0]), a.dtype)
    out[: a.shape[0]] = a
    return out


@njit(cache=True)
def _grow_placements(pl_box, pl_bin, pl_x, pl_y, pl_copy, n):
    """The five placement columns grown together to hold at least ``n`` rows (contents kept)."""
    return _grow(pl_box, n), _grow(pl_bin, n), _grow(pl_x, n), _grow(pl_y, n), _grow(pl_copy, n)


# ------------------------------------------------------------------------------------------------------
# The compiler
# ------------------------------------------------------------------------------------------------------

@njit(cache=True)
def base_kernel(rows, cols_per_group, groups, in_channels, xr, xc, layer_cls, cls_r, cls_c, slices,
                rnc_mapping, share, dw_chunks, dw_block, restarts, seed, spread, prune=True):
    """Budget-independent part of a compile: partitioning into boxes and the no-duplication packing.

    Returns the tuple :func:`finish_kernel` takes first: the box table (``layer, group, h, w, active_w,
    row0, col0, seq, blk, class`` as separate arrays), each layer's CSR pointer and ``seq``, the number of
    crossbars of the best packing (``min_crossbars``), its crossbar state (free rectangles, maxima, class,
    boxes per layer) and its placements. Nothing here is modified later, so the tuple can be cached and
    reused for every budget. ``prune`` (default) stops an ordering once it needs more crossbars than the best
    so far; ``prune=False`` packs every ordering to the end (the same result, slower; tests compare them).
    """
    n = rows.shape[0]
    ncls = cls_r.shape[0]
    b_layer, b_group, b_h, b_w, b_act, b_row0, b_col0, b_seq, b_blk, ptr, seq = partition_boxes(
        rows, cols_per_group, groups, in_channels, xr, xc, slices, rnc_mapping, dw_chunks, dw_block)
    nb = b_layer.shape[0]
    b_cls = np.empty(nb, np.int64)
    for k in range(nb):
        b_cls[k] = layer_cls[b_layer[k]]

    max_bins = nb + 1
    state = _new_state(max_bins, n)
    free, nfree, maxw, maxh, bcls, has = state
    scratch = np.empty((4 * MAX_FREE + 4, 5), np.int64)
    pl_box = np.empty(nb, np.int64)
    pl_bin = np.empty(nb, np.int64)
    pl_x = np.empty(nb, np.int64)
    pl_y = np.empty(nb, np.int64)

    # lower bound: full boxes alone + the cells of the rest over each class's capacity
    cells_cls = np.zeros(ncls, np.int64)
    full_count = 0
    for k in range(nb):
        c = b_cls[k]
        if b_h[k] == cls_r[c] and b_w[k] == cls_c[c]:
            full_count += 1
        else:
            cells_cls[c] += b_h[k] * b_w[k]
    lower = full_count
    for c in range(ncls):
        lower += _ceil_div(cells_cls[c], cls_r[c] * cls_c[c])

    distinct = np.zeros(n, np.bool_)  # ``spread``: the chunks of a depthwise layer on distinct crossbars
    if spread:
        for layer in range(n):
            distinct[layer] = rnc_mapping and groups[layer] > 1 and groups[layer] == in_channels[layer]
    n_orders = 1
    if share:
        n_orders = 4 + max(0, restarts)
    np.random.seed(seed)
    best_bins = np.int64(1) << 62
    key = np.empty(nb, np.float64)
    for trial in range(n_orders):
        for k in range(nb):
            h, w = b_h[k], b_w[k]
            if not share:
                key[k] = k
            elif trial == 0:
                key[k] = -(h * 65536.0 + w)
            elif trial == 1:
                key[k] = -(w * 65536.0 + h)
            elif trial == 2:
                key[k] = -(h * w * 65536.0 + h)
            elif trial == 3:
                key[k] = -(max(h, w) * 65536.0 + min(h, w))
            else:
                key[k] = -(h * w) * (0.5 + np.random.random())
        # full boxes first, in layer order (they are alone anyway)
        for k in range(nb):
            c = b_cls[k]
            if share and b_h[k] == cls_r[c] and b_w[k] == cls_c[c]:
                key[k] = -1e18 + k
        order = np.argsort(key, kind="mergesort")
        view = (_v(free), _v(nfree), _v(maxw), _v(maxh), _v(bcls), _v(has))
        nbins = _pack_base(order, _v(b_layer), _v(b_h), _v(b_w), _v(b_cls), _v(cls_r), _v(cls_c), share, view,
                           _v(scratch), _v(pl_box), _v(pl_bin), _v(pl_x), _v(pl_y), _v(distinct),
                           best_bins - 1 if prune else nb + 1)
        if nbins < best_bins:  # keep the best packing's state and placements (no replay needed)
            best_bins = nbins
            best = (free[:nbins].copy(), nfree[:nbins].copy(), maxw[:nbins].copy(), maxh[:nbins].copy(),
                    bcls[:nbins].copy(), has[:, :nbins].copy(), pl_box.copy(), pl_bin.copy(), pl_x.copy(),
                    pl_y.copy())
        _reset(state, nbins)
        if best_bins <= lower:
            break
    return (b_layer, b_group, b_h, b_w, b_act, b_row0, b_col0, b_seq, b_blk, b_cls, ptr, seq, best_bins) + best  # noqa: RUF005


@njit(cache=True)
def _critical_path(copies, positions, unit_ns, pred_ptr, pred_idx, stage, finish, tail):
    """Longest path through the dataflow graph with each layer's estimated stage time (no contention).

    Fills ``stage`` (``ceil(positions / copies) x unit_ns``), ``finish`` (earliest finish: the latest
    predecessor's finish + own stage) and ``tail`` (own stage + the longest path after it); a layer is on a
    critical path when ``finish - stage + tail`` equals the returned length."""
    for layer in range(copies.shape[0]):
        stage[layer] = _ceil_div(positions[layer], copies[layer]) * unit_ns[layer]
    return _longest_path(stage, pred_ptr, pred_idx, finish, tail)


@njit(cache=True)
def _longest_path(stage, pred_ptr, pred_idx, finish, tail):
    """:func:`_critical_path` with the stage times already in ``stage`` (the duplication loop keeps them up to
    date layer by layer instead of recomputing every stage at every step; same floats, same result)."""
    n = stage.shape[0]
    latency = 0.0
    for layer in range(n):
        start = 0.0
        for q in range(pred_ptr[layer], pred_ptr[layer + 1]):
            if finish[pred_idx[q]] > start:
                start = finish[pred_idx[q]]
        finish[layer] = start + stage[layer]
        if finish[layer] > latency:
            latency = finish[layer]
        tail[layer] = stage[layer]
    for layer in range(n - 1, -1, -1):
        for q in range(pred_ptr[layer], pred_ptr[layer + 1]):
            p = pred_idx[q]
            if stage[p] + tail[layer] > tail[p]:
                tail[p] = stage[p] + tail[layer]
    return latency


@njit(cache=True)
def _successors(pred_ptr, pred_idx):
    """CSR successors ``(succ_ptr, succ_idx)`` of the predecessor CSR (each layer's successors in ascending order)."""
    n = pred_ptr.shape[0] - 1
    succ_ptr = np.zeros(n + 1, np.int64)
    for q in range(pred_ptr[n]):
        succ_ptr[pred_idx[q] + 1] += 1
    for layer in range(n):
        succ_ptr[layer + 1] += succ_ptr[layer]
    fill = succ_ptr[:n].copy()
    succ_idx = np.empty(pred_ptr[n], np.int64)
    for layer in range(n):
        for q in range(pred_ptr[layer], pred_ptr[layer + 1]):
            p = pred_idx[q]
            succ_idx[fill[p]] = layer
            fill[p] += 1
    return succ_ptr, succ_idx


@njit(cache=True)
def _update_path(first, last, stage, pred_ptr, pred_idx, succ_ptr, succ_idx, finish, tail, peak):
    """:func:`_longest_path`, recomputing only ``finish[first:]`` and ``tail[:last + 1]``: the same ``finish``,
    ``tail`` and length when the others are up to date (``first = 0, last = n - 1``: everything).

    After only ``stage[L]`` changed, ``first = last = L``: the finish of a layer before ``L`` (topological order)
    and the tail of one after it cannot change. The rest is recomputed from the same values with the same
    operations (maxima of the same sums), so the result is bit-identical to the full pass. ``peak[i]`` is the
    largest finish of layers ``0..i`` (at least 0); returns ``peak[-1]``, the critical path's length."""
    n = stage.shape[0]
    for layer in range(first, n):
        start = 0.0
        for q in range(pred_ptr[layer], pred_ptr[layer + 1]):
            if finish[pred_idx[q]] > start:
                start = finish[pred_idx[q]]
        finish[layer] = start + stage[layer]
        before = peak[layer - 1] if layer > 0 else 0.0
        peak[layer] = finish[layer] if finish[layer] > before else before
    for layer in range(last, -1, -1):
        t = stage[layer]
        for q in range(succ_ptr[layer], succ_ptr[layer + 1]):
            if stage[layer] + tail[succ_idx[q]] > t:
                t = stage[layer] + tail[succ_idx[q]]
        tail[layer] = t
    return peak[n - 1]


@njit(cache=True)
def _step_values(layer, copies, positions, unit_ns, cost, per_copy, gain, ratio):
    """The next step of ``layer`` as :func:`_next_copy` computes it: its ``per_copy`` positions, the ``gain`` in
    ns of its next copies and the gain per cell ``ratio`` (cached per layer; only the duplicated layer changes)."""
    pc = _ceil_div(positions[layer], copies[layer])
    per_copy[layer] = pc
    if pc <= 1:
        return
    target = _ceil_div(positions[layer], pc - 1)
    gain[layer] = (pc - _ceil_div(positions[layer], target)) * unit_ns[layer]
    ratio[layer] = gain[layer] / ((target - copies[layer]) * cost[layer])


@njit(cache=True)
def _next_copy_cached(per_copy, gain, ratio, saturated, stage, finish, tail, latency_est, min_gain):
    """:func:`_next_copy` on the cached per-layer values of :func:`_step_values` (same order, same result)."""
    best = -1
    best_ratio = 0.0
    for layer in range(per_copy.shape[0]):
        if saturated[layer] or finish[layer] - stage[layer] + tail[layer] < latency_est * (1.0 - 1e-12):
            continue
        if per_copy[layer] <= 1:
            saturated[layer] = True
            continue
        if gain[layer] < min_gain * latency_est:
            continue
        if ratio[layer] > best_ratio:
            best_ratio = ratio[layer]
            best = layer
    return best


@njit(cache=True)
def _add_copy(layer, copy, ptr, b_h, b_w, b_cls, cls_r, cls_c, share, free, nfree, maxw, maxh, bcls, has, nopen,
              budget, cursor, scratch, j_bin, j_free, j_nfree, saved, txn, pl_box, pl_bin, pl_x, pl_y, pl_copy, npl):
    """Place copy ``copy`` of every box of ``layer`` on crossbars holding no box of the layer (first fit,
    best-short-side-fit inside the crossbar) or on new crossbars within ``budget``; a copy that does not fit
    is rolled back. Returns ``(placed, nopen, npl)``; the placement arrays must have room for the copy.

    ``cursor[k]``: box ``k``'s search starts there (every crossbar before it was rejected for ``k`` and stays
    so). Consecutive boxes of a layer with the same shape and class are rejected by the same crossbars, so a box
    starts at least where the previous one stopped (block-diagonal chunks: one scan instead of one per chunk).
    A layer whose copy is rolled back is never duplicated again, so its cursors are not restored."""
    nj = 0
    nopen0 = nopen
    npl0 = npl
    for k in range(ptr[layer], ptr[layer + 1]):
        h, w, c = b_h[k], b_w[k], b_cls[k]
        full = h == cls_r[c] and w == cls_c[c]
        b = -1
        x = 0
        y = 0
        if share and not full:
            if k > ptr[layer] and h == b_h[k - 1] and w == b_w[k - 1] and c == b_cls[k - 1] \
                    and cursor[k - 1] > cursor[k]:
                cursor[k] = cursor[k - 1]  # the same shape of the same layer: every crossbar it passed is out
            b, x, y, cursor[k] = _find_first(free, nfree, maxw, maxh, bcls, has, nopen, h, w, layer, c, cursor[k])
        if b < 0:
            if nopen >= budget:  # roll the partial copy back
                for q in range(nj - 1, -1, -1):
                    b = j_bin[q]
                    for r in range(j_nfree[q]):
                        for f in range(4):
                            free[b, r, f] = j_free[q, r, f]
                    nfree[b] = j_nfree[q]
                    _refresh_max(free, nfree, maxw, maxh, b)
                    has[layer, b] = 0
                for b in range(nopen0, nopen):
                    bcls[b] = -1
                    nfree[b] = 0
                    maxw[b] = 0
                    maxh[b] = 0
                    has[layer, b] = 0
                return False, nopen0, npl0
            b = nopen
            nopen += 1
            if full or not share:  # the crossbar is full (or never shared) at once
                bcls[b] = c
                nfree[b] = 0
                maxw[b] = 0
                maxh[b] = 0
            else:
                _open(free, nfree, maxw, maxh, bcls, b, c, cls_r, cls_c)
                _place(free, nfree, maxw, maxh, b, 0, 0, w, h, scratch)
        else:
            if saved[b] != txn:  # journal crossbars opened before this copy (rollback)
                saved[b] = txn
                j_bin[nj] = b
                j_nfree[nj] = nfree[b]
                for r in range(nfree[b]):  # only the live free rectangles
                    for f in range(4):
                        j_free[nj, r, f] = free[b, r, f]
                nj += 1
            _place(free, nfree, maxw, maxh, b, x, y, w, h, scratch)
        has[layer, b] += 1
        pl_box[npl] = k
        pl_bin[npl] = b
        pl_x[npl] = x
        pl_y[npl] = y
        pl_copy[npl] = copy
        npl += 1
    return True, nopen, npl


@njit(cache=True)
def _next_copy(copies, positions, unit_ns, cost, saturated, stage, finish, tail, latency_est, min_gain):
    """The layer whose next copies shorten the estimated latency most per cell: only layers on a critical
    path count; a step adds the fewest copies that shorten the layer's stage (``ceil(positions / copies)``
    must drop). Returns -1 when no layer can be duplicated further."""
    best = -1
    best_ratio = 0.0
    for layer in range(copies.shape[0]):
        if saturated[layer] or finish[layer] - stage[layer] + tail[layer] < latency_est * (1.0 - 1e-12):
            continue  # not on a critical path: a copy would not shorten the latency
        per_copy = _ceil_div(positions[layer], copies[layer])
        if per_copy <= 1:
            saturated[layer] = True
            continue
        target = _ceil_div(positions[layer], per_copy - 1)
        gain = (per_copy - _ceil_div(positions[layer], target)) * unit_ns[layer]
        if gain < min_gain * latency_est:
            continue  # the stop rule: the next copies gain too little
        ratio = gain / ((target - copies[layer]) * cost[layer])
        if ratio > best_ratio:
            best_ratio = ratio
            best = layer
    return best


@njit(cache=True)
def finish_kernel(base, in_channels, out_channels, rows, kernel_area, positions, pred_ptr, pred_idx, layer_cls,
                  cls_r, cls_c, params, share, duplicate, budget, min_gain, min_crossbars, policy):
    """Duplication within ``budget`` on top of the cached ``base`` (see :func:`base_kernel`), then the PPA.

    ``policy`` 0: RNC's pipeline balancing (copies of the longest stage until the budget is full); 1:
    latency-driven copies on the critical path (:func:`_next_copy`) with the stop rule ``min_gain`` (a step
    must gain that fraction of the estimated latency; then only copies that open no crossbar). ``min_crossbars``
    (or -1: the base's crossbars) decides feasibility.

    Returns ``totals`` (``T_*`` indices), the per-layer table (``L_*`` columns), the placements
    (``box, copy, crossbar, row, col``), the box table (``layer, group, h, w, active_w, row0, col0, block``)
    and each occupied crossbar's class.
    """
    (b_layer, b_group, b_h, b_w, b_act, b_row0, b_col0, b_seq, b_blk, b_cls, ptr, seq, nopen,
     base_free, base_nfree, base_maxw, base_maxh, base_bcls, base_has, base_box, base_bin, base_x, base_y) = base
    n = rows.shape[0]
    nb = b_layer.shape[0]
    max_bins = max(nb, budget) + 1
    # only the first nfree[b] rectangles of a crossbar are ever read, so ``free`` needs no zeroing
    free = np.empty((max_bins, MAX_FREE, 4), np.int64)
    nfree = np.zeros(max_bins, np.int64)
    maxw = np.zeros(max_bins, np.int64)
    maxh = np.zeros(max_bins, np.int64)
    bcls = np.full(max_bins, -1, np.int64)
    has = np.zeros((n, max_bins), np.int32)
    free[:nopen] = base_free
    nfree[:nopen] = base_nfree
    maxw[:nopen] = base_maxw
    maxh[:nopen] = base_maxh
    bcls[:nopen] = base_bcls
    has[:, :nopen] = base_has
    scratch = np.empty((4 * MAX_FREE + 4, 5), np.int64)
    cap_p = max(16, nb * 2)
    pl_box = np.empty(cap_p, np.int64)
    pl_bin = np.empty(cap_p, np.int64)
    pl_x = np.empty(cap_p, np.int64)
    pl_y = np.empty(cap_p, np.int64)
    pl_copy = np.zeros(cap_p, np.int64)
    pl_box[:nb] = base_box
    pl_bin[:nb] = base_bin
    pl_x[:nb] = base_x
    pl_y[:nb] = base_y
    npl = nb
    if min_crossbars < 0:
        min_crossbars = nopen
    feasible = budget == 0 or min_crossbars <= budget

    # ---- duplication within the budget: latency-driven, with a stop rule ------------------------------
    copies = np.ones(n, np.int64)
    unit_ns = np.zeros(n, np.float64)  # time per output position of one copy
    for k in range(nb):
        layer = b_layer[k]
        t = b_seq[k] * params[PARAM_READS_PER_INPUT] * _cycle_ns(b_act[k], _v(params))
        if t > unit_ns[layer]:
            unit_ns[layer] = t
    if duplicate and feasible and budget > 0:
        saturated = np.zeros(n, np.bool_)
        for layer in range(n):
            if positions[layer] <= 1:
                saturated[layer] = True
        j_bin = np.empty(nb + 1, np.int64)
        j_free = np.empty((nb + 1, MAX_FREE, 4), np.int64)
        j_nfree = np.empty(nb + 1, np.int64)
        saved = np.full(max_bins, -1, np.int64)
        first = 0  # crossbars full in the base packing stay full (copies only add boxes): skip them
        while first < nopen and nfree[first] == 0:
            first += 1
        cursor = np.full(nb, first, np.int64)  # first crossbar that may still take another copy of box k
        new_bins = np.zeros(n, np.int64)  # crossbars a copy surely opens: its full-size boxes (all, unshared)
        cost = np.zeros(n, np.float64)  # cells (box area) of one copy
        for k in range(nb):
            c = b_cls[k]
            cost[b_layer[k]] += b_h[k] * b_w[k]
            if not share or (b_h[k] == cls_r[c] and b_w[k] == cls_c[c]):
                new_bins[b_layer[k]] += 1
        stage = np.empty(n, np.float64)
        finish = np.empty(n, np.float64)
        tail = np.empty(n, np.float64)
        txn = 0
        if policy == 0:  # RNC: balance the pipeline, always duplicating the longest stage, until the budget is full
            for layer in range(n):
                stage[layer] = -1.0 if saturated[layer] else _ceil_div(positions[layer], copies[layer]) * unit_ns[layer]
            while True:
                top = -1
                top_t = -1.0
                second = 0.0
                for layer in range(n):
                    t = stage[layer]
                    if t > top_t:
                        second = max(second, top_t)
                        top_t = t
                        top = layer
                    elif t > second:
                        second = t
                if top < 0:
                    break
                layer = top
                while True:  # add copies of the bottleneck until it is no longer above the runner-up
                    if copies[layer] >= positions[layer] or nopen + new_bins[layer] > budget:
                        saturated[layer] = True
                        stage[layer] = -1.0
                        break
                    need = npl + ptr[layer + 1] - ptr[layer]
                    if need > pl_box.shape[0]:
                        pl_box, pl_bin, pl_x, pl_y, pl_copy = _grow_placements(pl_box, pl_bin, pl_x, pl_y, pl_copy,
                                                                               need)
                    txn += 1
                    ok, nopen, npl = _add_copy(layer, copies[layer], _v(ptr), _v(b_h), _v(b_w), _v(b_cls), _v(cls_r),
                                               _v(cls_c), share, _v(free), _v(nfree), _v(maxw), _v(maxh), _v(bcls),
                                               _v(has), nopen, budget, _v(cursor), _v(scratch), _v(j_bin), _v(j_free),
                                               _v(j_nfree), _v(saved), txn, _v(pl_box), _v(pl_bin), _v(pl_x),
                                               _v(pl_y), _v(pl_copy), npl)
                    if not ok:
                        saturated[layer] = True
                        stage[layer] = -1.0
                        break
                    copies[layer] += 1
                    stage[layer] = _ceil_div(positions[layer], copies[layer]) * unit_ns[layer]
                    if stage[layer] <= second:
                        break
        else:  # latency: critical-path copies with the stop rule
            fill_only = False  # second phase: copies that fit on open crossbars, whatever their gain
            per_copy = np.zeros(n, np.int64)
            gain = np.zeros(n, np.float64)
            ratio = np.zeros(n, np.float64)
            for layer in range(n):
                stage[layer] = _ceil_div(positions[layer], copies[layer]) * unit_ns[layer]
                _step_values(layer, _v(copies), _v(positions), _v(unit_ns), _v(cost), _v(per_copy), _v(gain),
                             _v(ratio))
            succ_ptr, succ_idx = _successors(pred_ptr, pred_idx)
            peak = np.empty(n, np.float64)
            latency_est = 0.0
            if n > 0:
                latency_est = _update_path(0, n - 1, _v(stage), _v(pred_ptr), _v(pred_idx), _v(succ_ptr),
                                           _v(succ_idx), _v(finish), _v(tail), _v(peak))
            while True:  # latency_est: the longest path with the current stages (updated after each step)
                best = _next_copy_cached(_v(per_copy), _v(gain), _v(ratio), _v(saturated), _v(stage), _v(finish),
                                         _v(tail), latency_est,
                                         0.0 if fill_only else min_gain)
                if best < 0:
                    if fill_only or min_gain <= 0.0:
                        break
                    fill_only = True  # the stop rule ends the first phase: no more crossbars are opened
                    budget = nopen
                    for layer in range(n):
                        if nopen + new_bins[layer] > budget:
                            saturated[layer] = True
                    continue
                layer = best
                target = _ceil_div(positions[layer], _ceil_div(positions[layer], copies[layer]) - 1)
                while copies[layer] < target:
                    if nopen + new_bins[layer] > budget:  # its full-size boxes alone do not fit: give up at once
                        saturated[layer] = True
                        break
                    need = npl + ptr[layer + 1] - ptr[layer]
                    if need > pl_box.shape[0]:
                        pl_box, pl_bin, pl_x, pl_y, pl_copy = _grow_placements(pl_box, pl_bin, pl_x, pl_y, pl_copy,
                                                                               need)
                    txn += 1
                    ok, nopen, npl = _add_copy(layer, copies[layer], _v(ptr), _v(b_h), _v(b_w), _v(b_cls), _v(cls_r),
                                               _v(cls_c), share, _v(free), _v(nfree), _v(maxw), _v(maxh), _v(bcls),
                                               _v(has), nopen, budget, _v(cursor), _v(scratch), _v(j_bin), _v(j_free),
                                               _v(j_nfree), _v(saved), txn, _v(pl_box), _v(pl_bin), _v(pl_x),
                                               _v(pl_y), _v(pl_copy), npl)
                    if not ok:
                        saturated[layer] = True
                        break
                    copies[layer] += 1
                stage[layer] = _ceil_div(positions[layer], copies[layer]) * unit_ns[layer]
                _step_values(layer, _v(copies), _v(positions), _v(unit_ns), _v(cost), _v(per_copy), _v(gain),
                             _v(ratio))
                latency_est = _update_path(layer, layer, _v(stage), _v(pred_ptr), _v(pred_idx), _v(succ_ptr),
                                           _v(succ_idx), _v(finish), _v(tail), _v(peak))

    # ---- PPA ------------------------------------------------------------------------------------------
    nbins = nopen
    busy = np.zeros(nbins, np.float64)
    layer_tab = np.zeros((n, N_LAYER_COLS), np.float64)
    # per-placement time on its crossbar and energy
    n_cell = 0.0
    n_row = 0.0
    n_col = 0.0
    rpi = params[PARAM_READS_PER_INPUT]
    used_cells = 0
    per_layer_bin_t = np.zeros(nbins, np.float64)
    stamp = np.full(nbins, -1, np.int64)
    # counting sort of placements by layer
    cnt = np.zeros(n + 1, np.int64)
    for p in range(npl):
        cnt[b_layer[pl_box[p]] + 1] += 1
    for layer in range(n):
        cnt[layer + 1] += cnt[layer]
    by_layer = np.empty(npl, np.int64)
    fill = cnt[:n].copy()
    for p in range(npl):
        layer = b_layer[pl_box[p]]
        by_layer[fill[layer]] = p
        fill[layer] += 1
    for layer in range(n):
        d = copies[layer]
        pos = positions[layer]
        stage = 0.0
        nx = 0
        cells = 0
        e_layer = 0.0
        for q in range(cnt[layer], cnt[layer + 1]):
            p = by_layer[q]
            k = pl_box[p]
            c = pl_copy[p]
            pos_c = pos // d + (1 if c < pos % d else 0)
            reads = pos_c * b_seq[k] * rpi
            t = reads * _cycle_ns(b_act[k], _v(params))
            b = pl_bin[p]
            busy[b] += t
            if stamp[b] != layer:
                stamp[b] = layer
                per_layer_bin_t[b] = 0.0
                nx += 1
            per_layer_bin_t[b] += t
            if per_layer_bin_t[b] > stage:
                stage = per_layer_bin_t[b]
            h, act = b_h[k], b_act[k]
            cells += h * b_w[k] // b_blk[k]
            n_cell += reads * h * act
            n_row += reads * h
            n_col += reads * act
            e_layer += reads * h * act * params[PARAM_E_CELL] + reads * h * params[PARAM_E_ROW] \
                + reads * act * params[PARAM_E_COLUMN]
        used_cells += cells
        layer_tab[layer, L_COPIES] = d
        layer_tab[layer, L_CROSSBARS] = nx
        layer_tab[layer, L_BOXES] = cnt[layer + 1] - cnt[layer]
        layer_tab[layer, L_CELLS] = cells
        layer_tab[layer, L_STAGE_NS] = stage
        layer_tab[layer, L_SEQ] = seq[layer]
        layer_tab[layer, L_CLASS] = layer_cls[layer]
        words = _ceil_div(pos * (in_channels[layer] * kernel_area[layer] + out_channels[layer])
                          * np.int64(params[PARAM_INPUT_BITS]), np.int64(params[PARAM_WORD_BITS]))
        layer_tab[layer, L_ENERGY_PJ] = e_layer + words * params[PARAM_E_WORD]
    n_words = 0.0
    macs = 0.0
    for layer in range(n):
        pos = positions[layer]
        words = _ceil_div(pos * (in_channels[layer] * kernel_area[layer] + out_channels[layer])
                          * np.int64(params[PARAM_INPUT_BITS]), np.int64(params[PARAM_WORD_BITS]))
        n_words += words
        macs += float(pos) * out_channels[layer] * rows[layer]
    # single-image schedule: a layer starts when its inputs are ready and its crossbars are free
    free_at = np.zeros(nbins, np.float64)
    latency = 0.0
    for layer in range(n):
        start = 0.0
        for q in range(pred_ptr[layer], pred_ptr[layer + 1]):
            f = layer_tab[pred_idx[q], L_FINISH_NS]
            if f > start:
                start = f
        for q in range(cnt[layer], cnt[layer + 1]):
            b = pl_bin[by_layer[q]]
            if free_at[b] > start:
                start = free_at[b]
        finish = start + layer_tab[layer, L_STAGE_NS]
        for q in range(cnt[layer], cnt[layer + 1]):
            free_at[pl_bin[by_layer[q]]] = finish
        layer_tab[layer, L_START_NS] = start
        layer_tab[layer, L_FINISH_NS] = finish
        if finish > latency:
            latency = finish
    period = 0.0
    for b in range(nbins):
        if busy[b] > period:
            period = busy[b]
    capacity = 0
    area_cells_extra = 0.0
    for b in range(nbins):
        c = bcls[b]
        cells_b = cls_r[c] * cls_c[c]
        capacity += cells_b
        area_cells_extra += cells_b - params[PARAM_REF_CELLS]
    imas = _ceil_div(nbins, np.int64(params[PARAM_XBARS_PER_IMA]))
    tiles = _ceil_div(imas, np.int64(params[PARAM_IMAS_PER_TILE]))
    area = imas * params[PARAM_AREA_IMA] + tiles * params[PARAM_AREA_TILE] \
        + area_cells_extra * params[PARAM_AREA_XBAR_CELL]
    leak_mw = imas * params[PARAM_LEAK_IMA_MW] + tiles * params[PARAM_LEAK_TILE_MW]
    totals = np.zeros(N_TOTALS, np.float64)
    totals[T_FEASIBLE] = 1.0 if feasible else 0.0
    totals[T_MIN_CROSSBARS] = min_crossbars
    totals[T_CROSSBARS_USED] = nbins
    totals[T_USED_CELLS] = used_cells
    totals[T_CAPACITY_CELLS] = capacity
    totals[T_LATENCY_NS] = latency
    totals[T_PERIOD_NS] = period
    totals[T_N_CELL_READS] = n_cell
    totals[T_N_ROW_DRIVES] = n_row
    totals[T_N_COLUMN_CONVERTS] = n_col
    totals[T_N_WORDS] = n_words
    totals[T_N_DIGITAL_OPS] = 0.0
    totals[T_LEAKAGE_MW] = leak_mw
    totals[T_AREA_MM2] = area
    totals[T_MACS] = macs
    totals[T_IMAS] = imas
    totals[T_TILES] = tiles
    placements = np.empty((npl, 5), np.int64)
    for p in range(npl):
        placements[p, 0] = pl_box[p]
        placements[p, 1] = pl_copy[p]
        placements[p, 2] = pl_bin[p]
        placements[p, 3] = pl_y[p]
        placements[p, 4] = pl_x[p]
    boxes = np.empty((nb, 8), np.int64)
    for k in range(nb):
        boxes[k, 0] = b_layer[k]
        boxes[k, 1] = b_group[k]
        boxes[k, 2] = b_h[k]
        boxes[k, 3] = b_w[k]
        boxes[k, 4] = b_act[k]
        boxes[k, 5] = b_row0[k]
        boxes[k, 6] = b_col0[k]
        boxes[k, 7] = b_blk[k]
    crossbar_cls = bcls[:nbins].copy()
    return totals, layer_tab, placements, boxes, crossbar_cls



@njit(cache=True)
def compile_kernel(rows, cols_per_group, groups, in_channels, out_channels, kernel_area, positions,
                   pred_ptr, pred_idx, xr, xc, layer_cls, cls_r, cls_c, slices, params,
                   rnc_mapping, share, duplicate, budget, dw_chunks, dw_block, restarts, seed, min_gain, policy):
    """One whole compile (:func:`base_kernel` then :func:`finish_kernel`) without caching."""
    base = base_kernel(rows, cols_per_group, groups, in_channels, xr, xc, layer_cls, cls_r, cls_c, slices,
                       rnc_mapping, share, dw_chunks, dw_block, restarts, seed, False)
    return finish_kernel(base, in_channels, out_channels, rows, kernel_area, positions, pred_ptr, pred_idx,
                         layer_cls, cls_r, cls_c, params, share, duplicate, budget, min_gain, -1, policy)
