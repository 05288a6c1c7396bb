"""The path tracer behind `ingp nrc`: unbiased against closed-form answers (furnace, a lit floor), energy
conserving BSDF sampling, and bad scenes refused with one line."""

import math

import numpy as np
import pytest

from ingp.errors import InputError
from ingp.nrc import tracer
from ingp.nrc.scene import Camera, Material, box, build_scene, load_scene, quad


def _furnace(albedo=0.5, emission=1.0):
    """A closed cube whose walls all emit ``emission`` and reflect ``albedo`` diffusely: L = Le / (1 - albedo)."""
    mesh = box((0.5, 0.5, 0.5), (1, 1, 1))
    mesh.invert()  # normals inward: the walls emit into the cube
    mat = Material(diffuse=(albedo,) * 3, emission=(emission,) * 3)
    return build_scene("furnace", [(mesh, mat)], Camera(origin=(0.5, 0.5, 0.5), target=(0.5, 0.5, 0.0)))


def _rays(n, seed=0, origin=(0.5, 0.5, 0.5)):
    d = np.random.default_rng(seed).normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    return np.broadcast_to(np.asarray(origin, float), d.shape).copy(), d


def test_furnace_gives_le_over_one_minus_albedo():
    for albedo in (0.3, 0.7):
        scene = _furnace(albedo)
        o, d = _rays(40000)
        frame = tracer.trace_paths(scene, o, d, seed=3, max_depth=200)
        mean = frame.radiance.mean(axis=0)
        err = frame.radiance.std(axis=0) / math.sqrt(len(o))
        print(f"furnace albedo {albedo}: {mean} expected {1 / (1 - albedo):.4f} (std err {err.max():.4f})")
        assert np.all(np.abs(mean - 1 / (1 - albedo)) < 4 * err + 1e-3)


def test_furnace_with_exact_cache_is_exact_in_the_mean():
    """Paths that end in a cache holding the true scattered radiance (Le·a/(1-a)) estimate the same answer."""
    albedo = 0.6
    scene = _furnace(albedo)
    o, d = _rays(20000, seed=1)
    frame = tracer.trace_paths(scene, o, d, seed=5, use_cache=True)
    assert frame.q_valid.mean() > 0.5
    exact_scattered = albedo / (1 - albedo)
    total = frame.radiance + frame.q_beta * exact_scattered * frame.q_valid[:, None]
    err = total.std(axis=0) / math.sqrt(len(o))
    print(f"furnace + oracle cache: {total.mean(axis=0)} expected {1 / (1 - albedo):.4f}")
    assert np.all(np.abs(total.mean(axis=0) - 1 / (1 - albedo)) < 4 * err + 1e-3)


def _lit_floor(albedo=0.5, half=0.5, height=1.0, emission=2.0):
    floor = quad((-5, 0, 5), (10, 0, 0), (0, 0, -10))  # normal +y
    light = quad((-half, height, -half), (2 * half, 0, 0), (0, 0, 2 * half))  # normal -y: faces the floor
    return build_scene("lit floor", [(floor, Material(diffuse=(albedo,) * 3)),
                                     (light, Material(emission=(emission,) * 3))],
                       Camera(origin=(0, 2, 2), target=(0, 0, 0)))


def _parallel_rectangle_form_factor(a, b, c):
    """Form factor from a differential area to a parallel a x b rectangle at distance c above one corner."""
    x, y = a / c, b / c
    return (x / math.hypot(1, x) * math.atan(y / math.hypot(1, x))
            + y / math.hypot(1, y) * math.atan(x / math.hypot(1, y))) / (2 * math.pi)


def test_floor_under_a_square_light_matches_the_form_factor():
    albedo, half, height, le = 0.5, 0.5, 1.0, 2.0
    scene = _lit_floor(albedo, half, height, le)
    n = 40000
    target = np.zeros(3)
    o = np.tile([1.5, 0.4, 0.3], (n, 1))
    d = target - o
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    frame = tracer.trace_paths(scene, o, d, seed=11)
    expected = albedo * le * 4 * _parallel_rectangle_form_factor(half, half, height)
    mean, err = frame.radiance.mean(axis=0), frame.radiance.std(axis=0) / math.sqrt(n)
    print(f"lit floor: {mean} expected {expected:.5f} (std err {err.max():.5f})")
    assert np.all(np.abs(mean - expected) < 4 * err)
    assert err.max() < 0.01 * expected  # the check has teeth: 1% resolution


def _albedo_estimate(diffuse, specular, exponent, cos_o, n=40000, seed=0):
    mats = (np.array([[diffuse] * 3], float), np.array([[specular] * 3], float), np.array([float(exponent)]))
    rng = np.random.default_rng(seed)
    wo = (math.sqrt(1 - cos_o**2), cos_o, 0.0)
    total = np.zeros(3)
    for u in rng.random((n, 3)):
        out = tracer._bsdf_sample(0, *mats, 0.0, 1.0, 0.0, *wo, u[0], u[1], u[2])
        total += out[3:6]
    return total / n


def test_bsdf_sampling_conserves_energy():
    # at normal incidence the normalised Phong lobe reflects exactly its albedo; elsewhere it loses what falls below
    est = _albedo_estimate(0.3, 0.6, 20, cos_o=1.0, n=16000)
    print("albedo at normal incidence:", est)
    assert np.allclose(est, 0.9, atol=0.012)
    for cos_o in (0.7, 0.3, 0.05):
        est = _albedo_estimate(0.3, 0.6, 20, cos_o=cos_o, n=4000)
        assert np.all(est <= 0.9 + 0.01)
    assert np.allclose(_albedo_estimate(0.8, 0.0, 1, cos_o=0.2, n=100), 0.8, atol=1e-9)  # Lambert: exactly 0.8


def test_bsdf_sample_weight_equals_eval_over_pdf():
    diffuse, specular, exponent = (np.array([[0.2, 0.3, 0.1]]), np.array([[0.5, 0.4, 0.6]]), np.array([30.0]))
    wo = (0.6, 0.8, 0.0)
    rng = np.random.default_rng(2)
    for u in rng.random((200, 3)):
        wx, wy, wz, r, g, b, pdf = tracer._bsdf_sample(0, diffuse, specular, exponent, 0.0, 1.0, 0.0, *wo, *u)
        fr, fg, fb, pdf2 = tracer._bsdf_eval(0, diffuse, specular, exponent, 0.0, 1.0, 0.0, *wo, wx, wy, wz)
        if pdf > 0:
            assert math.isclose(pdf, pdf2, rel_tol=1e-12)
            assert np.allclose([r, g, b], np.array([fr, fg, fb]) / pdf, rtol=1e-12)


def test_training_targets_walk_back_from_the_tail():
    frame = tracer.Frame(1, 2, 3)
    frame.t_count[:] = [3, 1]
    frame.t_nee[0, :, 0] = [1.0, 2.0, 3.0]
    frame.t_ratio[0, :, 0] = [0.5, 0.25, 2.0]
    frame.t_nee[1, 0, 0], frame.t_ratio[1, 0, 0] = 4.0, 9.0
    frame.tail_valid[:] = [True, False]
    feats, targets = tracer.training_targets(frame, np.array([[10.0, 0, 0], [100.0, 0, 0]]))
    # slot 0: L2 = 3 + 2*10 = 23, L1 = 2 + 0.25*23 = 7.75, L0 = 1 + 0.5*7.75 = 4.875; slot 1: no tail -> 4
    assert np.allclose(targets[:, 0], [4.875, 7.75, 23.0, 4.0])
    assert feats.shape == (4, tracer.N_FEATURES)


def test_bad_scenes_are_refused_with_one_line():
    with pytest.raises(InputError, match="unknown scene 'kitchen'"):
        load_scene("kitchen")
    with pytest.raises(InputError, match="no emitter"):
        build_scene("dark", [(quad((0, 0, 0), (1, 0, 0), (0, 0, 1)), Material(diffuse=(0.5,) * 3))],
                    Camera((0, 1, 0), (0, 0, 0)))
    with pytest.raises(InputError, match="diffuse \\+ specular > 1"):
        build_scene("hot", [(quad((0, 0, 0), (1, 0, 0), (0, 0, 1)), Material(diffuse=(0.7,) * 3, specular=(0.5,) * 3,
                                                                             emission=(1,) * 3))],
                    Camera((0, 1, 0), (0, 0, 0)))
    with pytest.raises(InputError, match="finite"):
        build_scene("nan", [(quad((0, 0, 0), (1, 0, 0), (0, 0, 1)), Material(emission=(float("nan"),) * 3))],
                    Camera((0, 1, 0), (0, 0, 0)))


def test_furnace_with_an_exact_indirect_cache_at_the_first_vertex_is_exact_in_the_mean():
    """``nee_at_query``: the cache holds only the indirect part a²/(1-a) (direct NEE gives a·Le at every query
    vertex); with ``query_primary`` every path ends there, and the estimate is still Le/(1-a)."""
    albedo = 0.6
    scene = _furnace(albedo)
    o, d = _rays(20000, seed=2)
    frame = tracer.trace_paths(scene, o, d, seed=9, use_cache=True, query_primary=True, nee_at_query=True)
    assert frame.q_valid.all()
    assert np.allclose(frame.q_beta, 1.0)  # the query is at the first vertex: throughput 1
    total = frame.radiance + frame.q_beta * albedo**2 / (1 - albedo)
    err = total.std(axis=0) / math.sqrt(len(o))
    print(f"furnace + exact indirect cache at the first vertex: {total.mean(axis=0)} expected {1 / (1 - albedo):.4f}")
    assert np.all(np.abs(total.mean(axis=0) - 1 / (1 - albedo)) < 4 * err + 1e-3)
    # the direct part alone (emission + one NEE sample) is Le + a·Le: the cache term must carry exactly the rest
    assert np.all(np.abs(frame.radiance.mean(axis=0) - (1 + albedo)) < 4 * frame.radiance.std(axis=0) / 141 + 1e-3)


def test_indirect_training_targets_in_the_furnace_are_the_indirect_radiance():
    """Training paths traced with ``nee_at_query`` record the tail's NEE; with the exact indirect cache at the tails
    every recorded vertex's target has mean a²/(1-a) (the spread heuristic, the unbiased tails and the walk back)."""
    albedo = 0.5
    scene = _furnace(albedo)
    n = 12000
    o, d = _rays(n, seed=4)
    unbiased = np.zeros(n, dtype=bool)
    unbiased[: n // 4] = True  # a quarter run on until Russian roulette: their targets are unbiased too
    frame = tracer.trace_paths(scene, o, d, seed=13, use_cache=True, query_primary=True, nee_at_query=True,
                               train_slot=np.arange(n), train_unbiased=unbiased, max_vertices=64)
    exact = albedo**2 / (1 - albedo)
    assert frame.tail_valid[n // 4:].mean() > 0.99 and not frame.tail_valid[: n // 4].any()
    assert np.allclose(frame.tail_nee[frame.tail_valid].mean(axis=0), albedo, rtol=0.05)  # a·Le by NEE
    feats, targets = tracer.training_targets(frame, np.full((n, 3), exact))
    assert len(targets) >= n
    err = targets.std(axis=0) / math.sqrt(len(targets))
    print(f"indirect targets: {targets.mean(axis=0)} expected {exact:.4f} (std err {err.max():.4f})")
    assert np.all(np.abs(targets.mean(axis=0) - exact) < 4 * err + 1e-3)
    assert err.max() < 0.03 * exact


def test_indirect_training_targets_subtract_each_vertex_nee():
    frame = tracer.Frame(1, 1, 2)
    frame.nee_at_query = True
    frame.t_count[:] = 2
    frame.t_nee[0, :, 0] = [1.0, 2.0]
    frame.t_ratio[0, :, 0] = [0.5, 0.25]
    frame.tail_valid[:] = True
    frame.tail_nee[0, 0] = 6.0
    _, targets = tracer.training_targets(frame, np.array([[10.0, 0, 0]]))
    # tail L_s = 6 + 10 = 16; L_i(1) = 0.25 * 16 = 4, L_s(1) = 2 + 4 = 6; L_i(0) = 0.5 * 6 = 3
    assert np.allclose(targets[:, 0], [3.0, 4.0])


def test_given_first_vertex_light_samples_are_used_and_unbiased():
    """``prim_u`` replaces the random numbers of the first vertex's next-event sample: a fixed sample gives the same
    radiance on every path from the same point, and uniform samples keep the lit floor's form-factor answer."""
    albedo, half, height, le = 0.5, 0.5, 1.0, 2.0
    scene = _lit_floor(albedo, half, height, le)
    n = 40000
    o = np.tile([1.5, 0.4, 0.3], (n, 1))
    d = -o / np.linalg.norm(o, axis=1, keepdims=True)
    fixed = tracer.trace_paths(scene, o[:64], d[:64], seed=1, max_depth=1, prim_u=np.tile([0.3, 0.6, 0.2], (64, 1)))
    assert np.ptp(fixed.radiance[:, 0]) == 0 and fixed.radiance[0, 0] > 0
    u = (np.random.default_rng(5).random(3) + np.arange(n)[:, None] * np.array([0.8191725, 0.6710436, 0.5497005])) % 1
    frame = tracer.trace_paths(scene, o, d, seed=11, prim_u=u)
    expected = albedo * le * 4 * _parallel_rectangle_form_factor(half, half, height)
    mean = frame.radiance.mean(axis=0)
    print(f"lit floor with given first-vertex samples: {mean} expected {expected:.5f}")
    assert np.all(np.abs(mean - expected) < 0.005 * expected)  # tighter than iid sampling's 1 % (4 std errs)


def test_several_light_samples_at_the_first_vertex_average_to_the_same_answer_with_less_noise():
    albedo, half, height, le = 0.5, 0.5, 1.0, 2.0
    scene = _lit_floor(albedo, half, height, le)
    n = 20000
    o = np.tile([1.5, 0.4, 0.3], (n, 1))
    d = -o / np.linalg.norm(o, axis=1, keepdims=True)
    expected = albedo * le * 4 * _parallel_rectangle_form_factor(half, half, height)
    one = tracer.trace_paths(scene, o, d, seed=21, max_depth=1).radiance[:, 0]
    four = tracer.trace_paths(scene, o, d, seed=22, max_depth=1, first_light=4).radiance[:, 0]
    print(f"lit floor, 1 vs 4 light samples: mean {one.mean():.5f} / {four.mean():.5f} (expected {expected:.5f}), "
          f"std {one.std():.4f} / {four.std():.4f}")
    assert abs(four.mean() - expected) < 4 * four.std() / math.sqrt(n)
    assert 0.4 < four.std() / one.std() < 0.6  # 1/sqrt(4) for independent samples
    with pytest.raises(ValueError, match="first_light"):
        tracer.trace_paths(scene, o[:4], d[:4], seed=1, first_light=2, prim_u=np.zeros((4, 3)))
