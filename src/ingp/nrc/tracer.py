"""A small unidirectional path tracer on the CPU (numba), with the hooks neural radiance caching needs.

One path per input ray. At every surface vertex: next-event estimation (one point on the emitters, chosen by area,
one shadow ray), then a BSDF sample (Lambertian + normalised Phong, one-sample mixture of the two lobes), Russian
roulette from depth ``rr_depth`` on. Emission is counted only where a camera ray hits an emitter; after a bounce,
direct light comes from next-event estimation alone (so an emitter hit by a bounce ends the path). The radiance
a path estimates at a vertex is therefore the *scattered* radiance ``L_s(x, wo) = L_o - L_e``, and that is what the
cache learns:  ``L_s(x_v) = nee_v + ratio_v * L_s(x_{v+1})``  (``ratio_v`` = f cos / pdf / continuation probability).

Triangles are tested one by one (no BVH): the built-in scenes have 30-50 triangles, and a 256² frame of short paths
takes a fraction of a second on one core, so an acceleration structure would not pay for its code.

With ``use_cache`` a path stops at the first vertex where NRC's path-spread heuristic says its footprint is wide
enough, ``(sum_{i>=2} sqrt(|x_{i-1} - x_i|² / (pdf(w_{i-1}) |cos theta_i|)))² > c * a0`` with
``a0 = |x_0 - x_1|² / (4 pi cos theta_1)`` (Müller et al. 2021, §3.3), and hands the cache its query (features and
throughput). Training paths (``train_slot[i] >= 0``) continue past that vertex and record every vertex's features,
``nee_v`` and ``ratio_v``; their tail ends in the cache by the same heuristic applied to the suffix, except for
``train_unbiased`` ones, which go on until Russian roulette (or ``max_vertices``) ends them.

Two options change what the cache stands for and where it is asked (a deviation from NRC, measured in
``benchmarks/nrc.py``): with ``nee_at_query`` a query vertex first takes its own next-event estimate, so the cache
learns only the *indirect* scattered radiance ``L_i(x_v) = ratio_v * L_s(x_{v+1})`` -- smooth, without the sharp
shadows of direct light; with ``query_primary`` every rendering path ends at its first vertex (after that vertex's
next-event estimate when combined), instead of where the spread heuristic says. ``prim_u`` hands in the first
vertex's light sample (the renderer stratifies it over frames, per pixel, as it does the pixel jitter).
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit, prange

N_FEATURES = 16  # position (3), direction (3), normal (3), roughness (1), diffuse (3), specular (3)
INV_PI = 1.0 / math.pi
EPS_T = 1e-7
OFFSET = 1e-5

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


@njit(cache=True, inline="always")
def _mix(z):
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@njit(cache=True, inline="always")
def _next(state):
    """splitmix64: (new state, uniform float in [0, 1))."""
    state = state + _GOLDEN
    return state, float(_mix(state) >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True)
def _intersect(ox, oy, oz, dx, dy, dz, v0, e1, e2, tmax):
    """Nearest triangle hit with EPS_T < t < tmax (Möller-Trumbore): (t, triangle) or (tmax, -1)."""
    best, hit = tmax, -1
    for k in range(v0.shape[0]):
        ax, ay, az = e1[k, 0], e1[k, 1], e1[k, 2]
        bx, by, bz = e2[k, 0], e2[k, 1], e2[k, 2]
        px, py, pz = dy * bz - dz * by, dz * bx - dx * bz, dx * by - dy * bx
        det = ax * px + ay * py + az * pz
        if abs(det) < 1e-14:
            continue
        inv = 1.0 / det
        tx, ty, tz = ox - v0[k, 0], oy - v0[k, 1], oz - v0[k, 2]
        u = (tx * px + ty * py + tz * pz) * inv
        if u < 0.0 or u > 1.0:
            continue
        qx, qy, qz = ty * az - tz * ay, tz * ax - tx * az, tx * ay - ty * ax
        v = (dx * qx + dy * qy + dz * qz) * inv
        if v < 0.0 or u + v > 1.0:
            continue
        t = (bx * qx + by * qy + bz * qz) * inv
        if EPS_T < t < best:
            best, hit = t, k
    return best, hit


@njit(cache=True, inline="always")
def _lum(r, g, b):
    return (r + g + b) / 3.0


@njit(cache=True)
def _frame(nx, ny, nz):
    """Two unit tangents completing the unit normal n to an orthonormal frame (Duff et al. 2017)."""
    s = 1.0 if nz >= 0.0 else -1.0
    a = -1.0 / (s + nz)
    b = nx * ny * a
    return (1.0 + s * nx * nx * a, s * b, -s * nx), (b, s + ny * ny * a, -ny)


@njit(cache=True)
def _bsdf_eval(mat, diffuse, specular, exponent, nx, ny, nz, wox, woy, woz, wix, wiy, wiz):
    """f(wo, wi) * cos(theta_i) (3 channels) and the solid-angle pdf of sampling wi; zeros below the surface."""
    cos_i = nx * wix + ny * wiy + nz * wiz
    if cos_i <= 0.0:
        return 0.0, 0.0, 0.0, 0.0
    dlum = _lum(diffuse[mat, 0], diffuse[mat, 1], diffuse[mat, 2])
    slum = _lum(specular[mat, 0], specular[mat, 1], specular[mat, 2])
    pd = dlum / (dlum + slum) if dlum + slum > 0.0 else 1.0
    cos_o = nx * wox + ny * woy + nz * woz
    rx, ry, rz = 2.0 * cos_o * nx - wox, 2.0 * cos_o * ny - woy, 2.0 * cos_o * nz - woz
    ca = rx * wix + ry * wiy + rz * wiz
    e = exponent[mat]
    lobe = ca ** e if ca > 0.0 else 0.0
    fs = (e + 2.0) * 0.5 * INV_PI * lobe
    pdf = pd * cos_i * INV_PI + (1.0 - pd) * (e + 1.0) * 0.5 * INV_PI * lobe
    return ((diffuse[mat, 0] * INV_PI + specular[mat, 0] * fs) * cos_i,
            (diffuse[mat, 1] * INV_PI + specular[mat, 1] * fs) * cos_i,
            (diffuse[mat, 2] * INV_PI + specular[mat, 2] * fs) * cos_i, pdf)


@njit(cache=True)
def _bsdf_sample(mat, diffuse, specular, exponent, nx, ny, nz, wox, woy, woz, u0, u1, u2):
    """A direction from the lobe mixture: (wi, f cos / pdf (3 channels), pdf); pdf 0 when it falls below."""
    dlum = _lum(diffuse[mat, 0], diffuse[mat, 1], diffuse[mat, 2])
    slum = _lum(specular[mat, 0], specular[mat, 1], specular[mat, 2])
    pd = dlum / (dlum + slum) if dlum + slum > 0.0 else 1.0
    if u0 < pd:  # cosine-weighted hemisphere about n
        ax, ay, az = nx, ny, nz
        ct = math.sqrt(1.0 - u1)
    else:  # Phong lobe about the mirror direction: pdf ∝ cos^e(alpha)
        cos_o = nx * wox + ny * woy + nz * woz
        ax, ay, az = 2.0 * cos_o * nx - wox, 2.0 * cos_o * ny - woy, 2.0 * cos_o * nz - woz
        ct = u1 ** (1.0 / (exponent[mat] + 1.0))
    st = math.sqrt(max(0.0, 1.0 - ct * ct))
    phi = 2.0 * math.pi * u2
    t, b = _frame(ax, ay, az)
    cp, sp = math.cos(phi) * st, math.sin(phi) * st
    wix = t[0] * cp + b[0] * sp + ax * ct
    wiy = t[1] * cp + b[1] * sp + ay * ct
    wiz = t[2] * cp + b[2] * sp + az * ct
    fr, fg, fb, pdf = _bsdf_eval(mat, diffuse, specular, exponent, nx, ny, nz, wox, woy, woz, wix, wiy, wiz)
    if pdf <= 0.0:
        return wix, wiy, wiz, 0.0, 0.0, 0.0, 0.0
    return wix, wiy, wiz, fr / pdf, fg / pdf, fb / pdf, pdf


@njit(cache=True)
def _occluded(ox, oy, oz, dx, dy, dz, dist, v0, e1, e2):
    t, k = _intersect(ox, oy, oz, dx, dy, dz, v0, e1, e2, dist - 1e-4)  # stop short of the light's own plane
    return k >= 0


@njit(cache=True)
def _features(out, px, py, pz, wox, woy, woz, nx, ny, nz, mat, diffuse, specular, exponent, bmin, bsize):
    """The cache's inputs, all in [0, 1]: position in the scene box (3), the outgoing direction (3) and the normal
    (3) as ``(v + 1) / 2`` (tcnn's SphericalHarmonics convention), ``1 - exp(-roughness)`` (1; a Phong exponent e
    counts as roughness ``sqrt(2 / (e + 2))``, a purely diffuse surface as 1), diffuse (3) and specular (3) albedo."""
    out[0] = min(max((px - bmin[0]) / bsize[0], 0.0), 1.0)
    out[1] = min(max((py - bmin[1]) / bsize[1], 0.0), 1.0)
    out[2] = min(max((pz - bmin[2]) / bsize[2], 0.0), 1.0)
    out[3], out[4], out[5] = 0.5 * (wox + 1.0), 0.5 * (woy + 1.0), 0.5 * (woz + 1.0)
    out[6], out[7], out[8] = 0.5 * (nx + 1.0), 0.5 * (ny + 1.0), 0.5 * (nz + 1.0)
    slum = _lum(specular[mat, 0], specular[mat, 1], specular[mat, 2])
    rough = math.sqrt(2.0 / (exponent[mat] + 2.0)) if slum > 0.0 else 1.0
    out[9] = 1.0 - math.exp(-rough)
    for c in range(3):
        out[10 + c] = diffuse[mat, c]
        out[13 + c] = specular[mat, c]


@njit(cache=True, parallel=True)
def trace(orig, dirs, seed, v0, e1, e2, normal, material, diffuse, specular, exponent, emission, emitters,
          emitter_cdf, emitter_area, bmin, bsize, use_cache, spread_c, max_depth, rr_depth, train_slot,
          train_unbiased, max_vertices, query_primary, nee_at_query, prim_u, first_light, radiance, emitted, q_feat,
          q_beta, q_valid, t_feat, t_nee, t_ratio, t_count, tail_feat, tail_valid, tail_nee):
    """Trace one path per ray ``orig, dirs`` (N, 3); write the outputs in place.

    radiance (N, 3): what the path gathered before it ended (or before its cache query); emitted (N, 3): the
    emission seen at the first hit (part of radiance).
    q_feat (N, N_FEATURES), q_beta (N, 3), q_valid (N,): the cache query ending the path and its throughput.
    For path i with slot s = train_slot[i] >= 0 (S slots, V = max_vertices): t_feat (S, V, N_FEATURES), t_nee
    (S, V, 3), t_ratio (S, V, 3), t_count (S,) recorded vertices; tail_feat (S, N_FEATURES), tail_valid (S,),
    tail_nee (S, 3) the next-event estimate at the tail (``nee_at_query`` only).
    ``first_light``: next-event samples (averaged) at the first vertex. ``prim_u`` (N, 3 * first_light) or (0, 3):
    when given, path i's next-event samples at its first vertex (emitter pick, two barycentric coordinates each)
    instead of random numbers. ``query_primary``: the rendering query is at the first
    vertex, whatever the spread. ``nee_at_query``: a query vertex (rendering end or training tail) first takes its
    next-event estimate, so the cache stands for the *indirect* part only (see the module docstring).
    """
    n = orig.shape[0]
    two_pi = 2.0 * math.pi
    for i in prange(n):
        state = _mix(np.uint64(seed) * _GOLDEN + np.uint64(i) + np.uint64(1))
        ox, oy, oz = orig[i, 0], orig[i, 1], orig[i, 2]
        dx, dy, dz = dirs[i, 0], dirs[i, 1], dirs[i, 2]
        br, bg, bb = 1.0, 1.0, 1.0
        lr, lg, lb = 0.0, 0.0, 0.0
        slot = train_slot[i]
        unbiased = slot >= 0 and train_unbiased[slot]
        rendering = True
        a0 = 0.0
        sum_all = 0.0
        sum_suffix = 0.0
        prev_pdf = 1.0
        nv = 0
        q_valid[i] = False
        for depth in range(max_depth):
            t, k = _intersect(ox, oy, oz, dx, dy, dz, v0, e1, e2, 1e30)
            if k < 0:
                break
            px, py, pz = ox + t * dx, oy + t * dy, oz + t * dz
            fx, fy, fz = normal[k, 0], normal[k, 1], normal[k, 2]
            cosd = fx * dx + fy * dy + fz * dz
            if cosd < 0.0:
                nx, ny, nz = fx, fy, fz
            else:
                nx, ny, nz = -fx, -fy, -fz
            abs_cos = max(abs(cosd), 1e-8)
            m = material[k]
            if depth == 0:
                if cosd < 0.0:
                    lr += emission[m, 0]
                    lg += emission[m, 1]
                    lb += emission[m, 2]
                    emitted[i, 0], emitted[i, 1], emitted[i, 2] = emission[m, 0], emission[m, 1], emission[m, 2]
                a0 = t * t / (2.0 * two_pi * abs_cos)
            else:
                term = math.sqrt(t * t / (prev_pdf * abs_cos))
                sum_all += term
                if not rendering:
                    sum_suffix += term
            if diffuse[m, 0] + diffuse[m, 1] + diffuse[m, 2] + specular[m, 0] + specular[m, 1] + specular[m, 2] <= 0:
                break  # an emitter (or a black surface) scatters nothing
            wox, woy, woz = -dx, -dy, -dz
            query_now = False
            tail_now = False
            if use_cache:
                if rendering and (query_primary or sum_all * sum_all > spread_c * a0 or depth == max_depth - 1):
                    _features(q_feat[i], px, py, pz, wox, woy, woz, nx, ny, nz, m, diffuse, specular, exponent,
                              bmin, bsize)
                    q_beta[i, 0], q_beta[i, 1], q_beta[i, 2] = br, bg, bb
                    q_valid[i] = True
                    query_now = True
                    if not nee_at_query:
                        rendering = False
                        if slot < 0:
                            break
                elif (not rendering and not unbiased
                      and (sum_suffix * sum_suffix > spread_c * a0 or nv == max_vertices or depth == max_depth - 1)):
                    _features(tail_feat[slot], px, py, pz, wox, woy, woz, nx, ny, nz, m, diffuse, specular,
                              exponent, bmin, bsize)
                    tail_valid[slot] = True
                    if not nee_at_query:
                        break
                    tail_now = True
            cur = -1
            if slot >= 0 and not tail_now:
                if nv == max_vertices:
                    break
                cur = nv
                nv += 1
                _features(t_feat[slot, cur], px, py, pz, wox, woy, woz, nx, ny, nz, m, diffuse, specular, exponent,
                          bmin, bsize)
            # next-event estimation: one uniform point on the emitters (by area), one shadow ray (first_light of
            # them, averaged, at the first vertex)
            nr, ng, nb = 0.0, 0.0, 0.0
            n_light = first_light if depth == 0 else 1
            for j in range(n_light):
                state, u = _next(state)
                state, u1 = _next(state)
                state, u2 = _next(state)
                if depth == 0 and prim_u.shape[0] > 0:  # the caller's (stratified) sample for the first vertex
                    u, u1, u2 = prim_u[i, 3 * j], prim_u[i, 3 * j + 1], prim_u[i, 3 * j + 2]
                lo, hi = 0, emitters.shape[0] - 1
                while lo < hi:
                    mid = (lo + hi) // 2
                    if emitter_cdf[mid] < u:
                        lo = mid + 1
                    else:
                        hi = mid
                ek = emitters[lo]
                su = math.sqrt(u1)
                b1, b2 = su * (1.0 - u2), su * u2
                sx = v0[ek, 0] + b1 * e1[ek, 0] + b2 * e2[ek, 0]
                sy = v0[ek, 1] + b1 * e1[ek, 1] + b2 * e2[ek, 1]
                sz = v0[ek, 2] + b1 * e1[ek, 2] + b2 * e2[ek, 2]
                qx, qy, qz = px + OFFSET * nx, py + OFFSET * ny, pz + OFFSET * nz  # the shadow ray's origin
                cx, cy, cz = sx - qx, sy - qy, sz - qz
                dist2 = cx * cx + cy * cy + cz * cz
                dist = math.sqrt(dist2)
                wix, wiy, wiz = cx / dist, cy / dist, cz / dist
                cos_l = -(normal[ek, 0] * wix + normal[ek, 1] * wiy + normal[ek, 2] * wiz)
                if cos_l > 0.0:
                    fr, fg, fb, _ = _bsdf_eval(m, diffuse, specular, exponent, nx, ny, nz, wox, woy, woz,
                                               wix, wiy, wiz)
                    if fr + fg + fb > 0.0:
                        if not _occluded(qx, qy, qz, wix, wiy, wiz, dist, v0, e1, e2):
                            em = material[ek]
                            g = cos_l * emitter_area / dist2
                            g /= n_light
                            nr += fr * emission[em, 0] * g
                            ng += fg * emission[em, 1] * g
                            nb += fb * emission[em, 2] * g
            if rendering:
                lr += br * nr
                lg += bg * ng
                lb += bb * nb
            if tail_now:  # nee_at_query: the tail's own direct light, then the cache's indirect there
                tail_nee[slot, 0], tail_nee[slot, 1], tail_nee[slot, 2] = nr, ng, nb
                break
            if query_now and nee_at_query:
                rendering = False
                if slot < 0:
                    break
            if cur >= 0:
                t_nee[slot, cur, 0], t_nee[slot, cur, 1], t_nee[slot, cur, 2] = nr, ng, nb
                t_ratio[slot, cur, 0], t_ratio[slot, cur, 1], t_ratio[slot, cur, 2] = 0.0, 0.0, 0.0
            # continue the path: BSDF sample, then Russian roulette
            state, u0 = _next(state)
            state, u1 = _next(state)
            state, u2 = _next(state)
            wix, wiy, wiz, wr, wg, wb, pdf = _bsdf_sample(m, diffuse, specular, exponent, nx, ny, nz,
                                                         wox, woy, woz, u0, u1, u2)
            if pdf <= 0.0 or wr + wg + wb <= 0.0:
                break
            if depth + 1 >= rr_depth:
                keep = min(0.95, max(br * wr, max(bg * wg, bb * wb)))
                state, u = _next(state)
                if u >= keep:
                    break
                wr, wg, wb = wr / keep, wg / keep, wb / keep
            if cur >= 0:
                t_ratio[slot, cur, 0], t_ratio[slot, cur, 1], t_ratio[slot, cur, 2] = wr, wg, wb
            br, bg, bb = br * wr, bg * wg, bb * wb
            prev_pdf = pdf
            ox, oy, oz = px + OFFSET * nx, py + OFFSET * ny, pz + OFFSET * nz
            dx, dy, dz = wix, wiy, wiz
        radiance[i, 0], radiance[i, 1], radiance[i, 2] = lr, lg, lb
        if slot >= 0:
            t_count[slot] = nv


@njit(cache=True, parallel=True)
def _first_emission(orig, dirs, v0, e1, e2, normal, material, emission, out):
    for i in prange(orig.shape[0]):
        ox, oy, oz = orig[i, 0], orig[i, 1], orig[i, 2]
        dx, dy, dz = dirs[i, 0], dirs[i, 1], dirs[i, 2]
        t, k = _intersect(ox, oy, oz, dx, dy, dz, v0, e1, e2, 1e30)
        if k >= 0 and normal[k, 0] * dx + normal[k, 1] * dy + normal[k, 2] * dz < 0.0:
            m = material[k]
            out[i, 0], out[i, 1], out[i, 2] = emission[m, 0], emission[m, 1], emission[m, 2]


def first_emission(scene, orig: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    """The emission a ray sees at its first hit, (N, 3) for rays (N, 3): exactly the emission term that
    :func:`trace` counts for a camera ray (front faces only), without the rest of the path."""
    out = np.zeros((len(orig), 3))
    _first_emission(np.ascontiguousarray(orig, dtype=np.float64), np.ascontiguousarray(dirs, dtype=np.float64),
                    scene.v0, scene.e1, scene.e2, scene.normal, scene.material, scene.emission, out)
    return out


def set_threads(n: int | None) -> None:
    """Cap numba's worker threads (the machine is shared); None leaves numba's default."""
    if n is not None:
        numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))


class Frame:
    """What one call of :func:`trace_paths` returns (numpy arrays; shapes as in :func:`trace`)."""

    def __init__(self, n: int, n_slots: int, max_vertices: int):
        self.radiance = np.zeros((n, 3))
        self.emitted = np.zeros((n, 3))
        self.q_feat = np.zeros((n, N_FEATURES))
        self.q_beta = np.zeros((n, 3))
        self.q_valid = np.zeros(n, dtype=np.bool_)
        s, v = max(n_slots, 1), max(max_vertices, 1)
        self.t_feat = np.zeros((s, v, N_FEATURES))
        self.t_nee = np.zeros((s, v, 3))
        self.t_ratio = np.zeros((s, v, 3))
        self.t_count = np.zeros(s, dtype=np.int64)
        self.tail_feat = np.zeros((s, N_FEATURES))
        self.tail_valid = np.zeros(s, dtype=np.bool_)
        self.tail_nee = np.zeros((s, 3))
        self.n_slots = n_slots
        self.nee_at_query = False


def trace_paths(scene, orig: np.ndarray, dirs: np.ndarray, seed: int, *, use_cache: bool = False,
                spread_c: float = 0.01, max_depth: int = 64, rr_depth: int = 3,
                train_slot: np.ndarray | None = None, train_unbiased: np.ndarray | None = None,
                max_vertices: int = 16, query_primary: bool = False, nee_at_query: bool = False,
                prim_u: np.ndarray | None = None, first_light: int = 1) -> Frame:
    """Trace one path per ray (``orig``, ``dirs``: (N, 3)) through ``scene``; see :func:`trace`.

    ``train_slot`` (N,) int: -1, or the slot where path i records its vertices (slots 0..S-1, each used once);
    ``train_unbiased`` (S,) bool: that training path ignores the cache at its tail."""
    n = len(orig)
    if first_light < 1 or (prim_u is not None and prim_u.shape != (n, 3 * first_light)):
        raise ValueError(f"first_light must be >= 1 with prim_u of shape ({n}, {3 * first_light}), got "
                         f"{first_light} and {None if prim_u is None else prim_u.shape}")
    if train_slot is None:
        train_slot = np.full(n, -1, dtype=np.int64)
    n_slots = int(train_slot.max()) + 1 if n else 0
    if train_unbiased is None:
        train_unbiased = np.zeros(max(n_slots, 1), dtype=np.bool_)
    out = Frame(n, n_slots, max_vertices)
    trace(np.ascontiguousarray(orig, dtype=np.float64), np.ascontiguousarray(dirs, dtype=np.float64),
          np.uint64(seed & 0xFFFFFFFFFFFFFFFF), scene.v0, scene.e1, scene.e2, scene.normal, scene.material,
          scene.diffuse, scene.specular, scene.exponent, scene.emission, scene.emitters, scene.emitter_cdf,
          float(scene.emitter_area), scene.bbox_min, scene.bbox_size, bool(use_cache), float(spread_c),
          int(max_depth), int(rr_depth), np.ascontiguousarray(train_slot, dtype=np.int64),
          np.ascontiguousarray(train_unbiased, dtype=np.bool_), int(max_vertices), bool(query_primary),
          bool(nee_at_query), np.zeros((0, 3)) if prim_u is None else np.ascontiguousarray(prim_u, np.float64),
          int(first_light), out.radiance, out.emitted, out.q_feat, out.q_beta, out.q_valid, out.t_feat, out.t_nee,
          out.t_ratio, out.t_count, out.tail_feat, out.tail_valid, out.tail_nee)
    out.nee_at_query = bool(nee_at_query)
    return out


def training_targets(frame: Frame, tail_radiance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Features (K, N_FEATURES) and scattered-radiance targets (K, 3) of every recorded training vertex.

    ``tail_radiance`` (S, 3): the cache's prediction at each slot's tail (ignored where ``tail_valid`` is False).
    Walks back from the tail: ``L_s(v) = nee_v + ratio_v * L_s(v + 1)``. For a frame traced with ``nee_at_query``
    the cache holds the indirect part: the tail's scattered radiance is ``tail_nee + tail_radiance`` and each
    vertex's target is its indirect part ``L_s(v) - nee_v = ratio_v * L_s(v + 1)``."""
    s, v = frame.n_slots, frame.t_feat.shape[1]
    if s == 0:
        return np.zeros((0, N_FEATURES)), np.zeros((0, 3))
    count = frame.t_count[:s]
    tail = tail_radiance[:s] + frame.tail_nee[:s] if frame.nee_at_query else tail_radiance[:s]
    following = np.where(frame.tail_valid[:s, None], tail, 0.0)
    targets = np.zeros((s, v, 3))
    for j in range(v - 1, -1, -1):
        inside = (j < count)[:, None]
        at_tail = (j == count - 1)[:, None]
        # the vertex after j is the tail for the last recorded vertex, else vertex j + 1
        after = np.where(at_tail, following, targets[:, j + 1] if j + 1 < v else 0.0)
        targets[:, j] = np.where(inside, frame.t_nee[:s, j] + frame.t_ratio[:s, j] * after, 0.0)
    if frame.nee_at_query:
        targets = targets - frame.t_nee[:s]
    mask = np.arange(v)[None, :] < count[:, None]
    return frame.t_feat[:s][mask], targets[mask]
