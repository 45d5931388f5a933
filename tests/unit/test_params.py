"""sweepq.params: every distribution's samples (properties and statistics), ppf/cdf, helpers."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from sweepq.checks import Checker
from sweepq.config import load_config
from sweepq.params import (
    DISTRIBUTIONS,
    Categorical,
    CategoricalWithProbabilities,
    IntUniform,
    canonical,
    flatten,
    get_path,
    make,
    normalise_parameters,
    unflatten,
)

SETTINGS = settings(max_examples=100, deadline=None, derandomize=True)  # CI runs are repeatable
DRAWS = 25


def spec_of(raw: dict) -> dict:
    """The normalised leaf spec, via the real validator (so specs are ones users can write)."""
    return load_config({"method": "random", "parameters": {"p": raw}})["parameters"]["p"]


def draws(dist, seed: int, n: int = DRAWS) -> list:
    rng = np.random.default_rng(seed)
    return [dist.sample(rng) for _ in range(n)]


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
width = st.floats(min_value=1e-3, max_value=1e6)
seeds = st.integers(min_value=0, max_value=2**32 - 1)
qs = st.one_of(st.integers(min_value=1, max_value=50), st.floats(min_value=0.01, max_value=50))


def is_multiple(v: float, q: float) -> bool:
    r = v / q
    return abs(r - round(r)) <= 1e-6 * max(1.0, abs(r))


# --- properties ------------------------------------------------------------------------------


@SETTINGS
@given(lo=finite, w=width, seed=seeds)
def test_uniform(lo, w, seed):
    d = make(spec_of({"min": lo, "max": lo + w, "distribution": "uniform"}))
    for v in draws(d, seed):
        assert type(v) is float and d.min <= v <= d.max


@SETTINGS
@given(lo=st.integers(-(10**9), 10**9), w=st.integers(1, 10**6), seed=seeds)
def test_int_uniform(lo, w, seed):
    d = make(spec_of({"min": lo, "max": lo + w}))
    for v in draws(d, seed):
        assert type(v) is int and lo <= v <= lo + w


@SETTINGS
@given(lo=finite, w=width, q=qs, seed=seeds)
def test_q_uniform(lo, w, q, seed):
    d = make(spec_of({"min": lo, "max": lo + w, "q": q, "distribution": "q_uniform"}))
    for v in draws(d, seed):
        # W&B's rounding: an int only when q is an int; at most q/2 outside [min, max]
        assert type(v) is (int if isinstance(q, int) else float)
        assert d.min - q / 2 - 1e-9 * abs(d.min) <= v <= d.max + q / 2 + 1e-9 * abs(d.max)
        assert is_multiple(v, q)


@SETTINGS
@given(lo=st.floats(1e-8, 1e3), ratio=st.floats(1.001, 1e6), seed=seeds, q=st.one_of(st.none(), qs))
def test_log_uniform_values(lo, ratio, seed, q):
    raw = {"min": lo, "max": lo * ratio, "distribution": "log_uniform_values"}
    if q is not None:
        raw.update(distribution="q_log_uniform_values", q=q)
    d = make(spec_of(raw))
    for v in draws(d, seed):
        if q is None:
            assert type(v) is float and lo * (1 - 1e-9) <= v <= lo * ratio * (1 + 1e-9)
        else:
            assert type(v) is (int if isinstance(q, int) else float)
            assert lo - q / 2 - 1e-9 <= v <= lo * ratio * (1 + 1e-9) + q / 2 and is_multiple(v, q)


@SETTINGS
@given(lo=st.floats(-20, 20), w=st.floats(0.01, 20), seed=seeds, inv=st.booleans())
def test_log_uniform_v1_exponents(lo, w, seed, inv):
    d = make(spec_of({"min": lo, "max": lo + w, "distribution": "inv_log_uniform" if inv else "log_uniform"}))
    a, b = (math.exp(-(lo + w)), math.exp(-lo)) if inv else (math.exp(lo), math.exp(lo + w))
    for v in draws(d, seed):
        assert type(v) is float and a * (1 - 1e-9) <= v <= b * (1 + 1e-9)


@SETTINGS
@given(lo=st.floats(1e-8, 1e3), ratio=st.floats(1.001, 1e6), seed=seeds)
def test_inv_log_uniform_values(lo, ratio, seed):
    d = make(spec_of({"min": lo, "max": lo * ratio, "distribution": "inv_log_uniform_values"}))
    for v in draws(d, seed):
        assert lo * (1 - 1e-9) <= v <= lo * ratio * (1 + 1e-9)


@SETTINGS
@given(mu=st.floats(-100, 100), sigma=st.floats(0, 10), seed=seeds,
       kind=st.sampled_from(["normal", "log_normal"]), q=st.one_of(st.none(), qs))  # fmt: skip
def test_normal_family(mu, sigma, seed, kind, q):
    if kind == "log_normal":
        mu = mu / 20  # keep exp() finite
    raw = {"distribution": kind, "mu": mu, "sigma": sigma}
    if q is not None:
        raw.update(distribution=f"q_{kind}", q=q)
    d = make(spec_of(raw))
    for v in draws(d, seed):
        assert math.isfinite(v)
        if kind == "log_normal" and q is None:
            assert v >= 0
        if q is not None:
            assert type(v) is (int if isinstance(q, int) else float) and is_multiple(v, q)
        else:
            assert type(v) is float


@SETTINGS
@given(a=st.floats(0, 20), b=st.floats(0, 20), seed=seeds, q=st.one_of(st.none(), st.floats(0.01, 1)))
def test_beta_family(a, b, seed, q):
    raw = {"distribution": "beta", "a": a, "b": b}
    if q is not None:
        raw.update(distribution="q_beta", q=q)
    d = make(spec_of(raw))
    for v in draws(d, seed):
        if q is None:
            assert 0.0 <= v <= 1.0
        else:
            assert -q / 2 <= v <= 1 + q / 2 and is_multiple(v, q)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False) | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=2), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(values=st.lists(json_values, min_size=1, max_size=6), seed=seeds)
def test_categorical(values, seed):
    d = make(spec_of({"values": values}))
    keys = {canonical(v) for v in values}
    for v in draws(d, seed):
        assert canonical(v) in keys


@SETTINGS
@given(weights=st.lists(st.integers(0, 5), min_size=1, max_size=6).filter(any), seed=seeds)
def test_categorical_with_probabilities(weights, seed):
    probs = [w / sum(weights) for w in weights]
    values = list(range(len(weights)))
    d = make(spec_of({"values": values, "probabilities": probs}))
    for v in draws(d, seed):
        assert probs[v] > 0


def test_constant_is_a_copy():
    d = make(spec_of({"value": {"a": [1]}}))
    v = d.sample(np.random.default_rng(0))
    v["a"].append(2)
    assert d.sample(np.random.default_rng(0)) == {"a": [1]}
    assert not d.searchable


# --- ppf / cdf (and the W&B quirks sweepq does not copy) ---------------------------------------


def test_categorical_ppf_edges_and_falsy_values():
    values = [1, 0, False, None, "", [], "x"]
    d = Categorical(values)
    assert d.ppf(0.0) == 1  # W&B: the last value
    assert d.ppf(1.0) == "x"
    for i, v in enumerate(values):
        assert d.cdf(v) == (i + 1) / len(values)  # W&B: every falsy value at index 0
        assert canonical(d.ppf(d.cdf(v))) == canonical(v)
    assert d.index(False) == 2 and d.index(0) == 1
    with pytest.raises(ValueError):
        d.cdf("absent")


def test_int_uniform_ppf_edges():
    d = IntUniform(3, 7)
    assert d.ppf(0.0) == 3  # W&B: min - 1
    assert d.ppf(1.0) == 7
    for v in range(3, 8):
        assert d.ppf(d.cdf(v)) == v


def test_probabilities_ppf_and_cdf():
    d = CategoricalWithProbabilities(["a", "b", "c"], [0.0, 0.25, 0.75])
    assert d.ppf(0.0) == "b"  # zero-probability values are never drawn
    assert d.ppf(0.3) == "c" and d.ppf(0.9999999999) == "c"
    for v in ("b", "c"):
        assert d.ppf(d.cdf(v)) == v
    assert d.grid() is None


@pytest.mark.parametrize(
    "raw",
    [
        {"distribution": "uniform", "min": -2, "max": 5},
        {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-1},
        {"distribution": "log_uniform", "min": -5, "max": 2},
        {"distribution": "inv_log_uniform", "min": -1, "max": 3},
        {"distribution": "inv_log_uniform_values", "min": 0.01, "max": 100},
        {"distribution": "normal", "mu": 1, "sigma": 2},
        {"distribution": "log_normal", "mu": -1, "sigma": 0.5},
        {"distribution": "beta", "a": 2, "b": 5},
    ],
)
def test_continuous_cdf_inverts_ppf(raw):
    d = make(spec_of(raw))
    prev = -math.inf
    for u in np.linspace(0.001, 0.999, 57):
        v = d.ppf(float(u))
        assert v >= prev  # ppf increases with u (inv_log_uniform too)
        prev = v
        assert d.cdf(v) == pytest.approx(u, abs=1e-7)


def test_q_rounding_matches_w_and_b():
    assert (
        make(spec_of({"distribution": "q_uniform", "min": 0, "max": 1, "q": 0.1})).ppf(0.6)
        == 0.6000000000000001
    )
    assert (
        make(spec_of({"distribution": "q_uniform", "min": 0, "max": 1000})).ppf(0.317) == 317.0
    )  # default q 1.0
    v = make(spec_of({"distribution": "q_log_uniform_values", "min": 16, "max": 256, "q": 8})).ppf(0.5)
    assert type(v) is int and v % 8 == 0
    assert (
        make(spec_of({"distribution": "q_uniform", "min": 0, "max": 10, "q": 5})).ppf(0.25) == 0
    )  # half to even


# --- statistics: the draws follow each definition ------------------------------------------------

N = 4000
ALPHA = 1e-3  # fixed seeds: deterministic, so no flakiness; a wrong distribution fails by miles


def sample_array(raw: dict, seed: int = 12345) -> np.ndarray:
    return np.array(draws(make(spec_of(raw)), seed, N), dtype=float)


@pytest.mark.parametrize(
    ("raw", "transform", "reference"),
    [
        ({"distribution": "uniform", "min": -3, "max": 7}, None, stats.uniform(-3, 10)),
        ({"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-1}, np.log, stats.uniform(math.log(1e-5), math.log(1e4))),
        ({"distribution": "log_uniform", "min": -9, "max": -2}, np.log, stats.uniform(-9, 7)),
        ({"distribution": "inv_log_uniform", "min": 1, "max": 4}, lambda x: -np.log(x), stats.uniform(1, 3)),
        ({"distribution": "inv_log_uniform_values", "min": 0.1, "max": 10}, lambda x: -np.log(x),
         stats.uniform(-math.log(10), math.log(100))),
        ({"distribution": "normal", "mu": 2, "sigma": 3}, None, stats.norm(2, 3)),
        ({"distribution": "log_normal", "mu": -1, "sigma": 0.5}, None, stats.lognorm(0.5, scale=math.exp(-1))),
        ({"distribution": "beta", "a": 2, "b": 5}, None, stats.beta(2, 5)),
        ({"distribution": "beta", "a": 0.5, "b": 0.5}, None, stats.beta(0.5, 0.5)),
    ],
)  # fmt: skip
def test_continuous_distributions_ks(raw, transform, reference):
    x = sample_array(raw)
    if transform is not None:
        x = transform(x)
    assert stats.kstest(x, reference.cdf).pvalue > ALPHA


def chi_square_ok(observed: Counter, expected: dict) -> bool:
    keys = list(expected)
    assert set(observed) <= set(keys), set(observed) - set(keys)
    obs = [observed.get(k, 0) for k in keys]
    exp = [expected[k] * N for k in keys]
    return stats.chisquare(obs, exp).pvalue > ALPHA


def test_int_uniform_chi_square():
    c = Counter(draws(make(spec_of({"min": -2, "max": 7})), 7, N))
    assert chi_square_ok(c, {k: 0.1 for k in range(-2, 8)})


def test_categorical_chi_square():
    c = Counter(draws(make(spec_of({"values": ["a", "b", "c", "d"]})), 8, N))
    assert chi_square_ok(c, {k: 0.25 for k in "abcd"})


def test_probabilities_chi_square():
    c = Counter(draws(make(spec_of({"values": ["a", "b", "c"], "probabilities": [0.1, 0.6, 0.3]})), 9, N))
    assert chi_square_ok(c, {"a": 0.1, "b": 0.6, "c": 0.3})


def test_q_uniform_chi_square():
    # round(U(0, 10) / 1) * 1: the end points get half the mass of the inner integers
    c = Counter(draws(make(spec_of({"distribution": "q_uniform", "min": 0, "max": 10, "q": 1})), 10, N))
    assert chi_square_ok(c, {0: 0.05, **{k: 0.1 for k in range(1, 10)}, 10: 0.05})


def test_q_normal_chi_square():
    c = Counter(draws(make(spec_of({"distribution": "q_normal", "mu": 0, "sigma": 1, "q": 1})), 11, N))
    expected = {k: stats.norm.cdf(k + 0.5) - stats.norm.cdf(k - 0.5) for k in range(-5, 6)}
    assert all(-5 <= k <= 5 for k in c)  # beyond 5 sigma: practically never in 4000 draws
    total = sum(expected.values())
    assert chi_square_ok(c, {k: p / total for k, p in expected.items()})


@pytest.mark.parametrize(
    ("raw", "reference"),
    [
        ({"distribution": "q_log_uniform_values", "min": 1, "max": 100, "q": 5},
         stats.loguniform(1, 100)),
        ({"distribution": "q_log_uniform", "min": 0, "max": math.log(50), "q": 2},
         stats.loguniform(1, 50)),
        ({"distribution": "q_log_normal", "mu": 1, "sigma": 0.5, "q": 1},
         stats.lognorm(0.5, scale=math.e)),
        ({"distribution": "q_beta", "a": 2, "b": 5, "q": 0.1}, stats.beta(2, 5)),
    ],
)  # fmt: skip
def test_quantised_distributions_chi_square(raw, reference):
    """P(value = k*q) = F((k + 1/2) q) - F((k - 1/2) q) for the unrounded distribution's CDF F."""
    q = raw["q"]
    c = Counter(round(v / q) for v in draws(make(spec_of(raw)), 13, N))
    ks = range(min(c), max(c) + 1)
    expected = {k: reference.cdf((k + 0.5) * q) - reference.cdf((k - 0.5) * q) for k in ks}
    total = sum(expected.values())
    assert total > 0.999
    assert chi_square_ok(c, {k: p / total for k, p in expected.items() if p > 0})


# --- helpers ---------------------------------------------------------------------------------


def test_canonical_equalities():
    assert canonical({"a": 1, "b": 2}) == canonical({"b": 2, "a": 1})
    assert canonical(3e6) == canonical(3000000)
    assert canonical(True) != canonical(1)
    assert canonical(0) != canonical(False) != canonical(None)
    assert canonical([1, 2]) != canonical((1, 2))
    assert canonical(float("nan")) == canonical(float("nan"))
    assert canonical(0.5) != canonical(1)


def test_flatten_unflatten_keep_dotted_leaf_names():
    params = load_config({
        "method": "random",
        "parameters": {
            "z": {"value": 1},
            "model": {"parameters": {"input_layer.weight": {"values": [1]}, "act": {"value": "relu"},
                                     "block": {"parameters": {"depth": {"min": 1, "max": 2}}}}},
            "a.b": {"values": [1, 2]},
        },
    })["parameters"]  # fmt: skip
    flat = flatten(params)
    assert list(flat) == [
        ("a.b",),
        ("model", "act"),
        ("model", "block", "depth"),
        ("model", "input_layer.weight"),
        ("z",),
    ]
    nested = unflatten({path: i for i, path in enumerate(flat)})
    assert nested == {"a.b": 0, "model": {"act": 1, "block": {"depth": 2}, "input_layer.weight": 3}, "z": 4}
    assert get_path(nested, ("model", "block", "depth")) == 2
    assert get_path(nested, ("model", "nope"), None) is None
    with pytest.raises(KeyError):
        get_path(nested, ("a.b", "x"))


# --- the registry: one rule per distribution, for every method ------------------------------------


def test_registry_holds_every_w_and_b_distribution():
    assert set(DISTRIBUTIONS) == {
        "constant", "categorical", "categorical_w_probabilities", "int_uniform", "uniform", "q_uniform",
        "log_uniform", "log_uniform_values", "q_log_uniform", "q_log_uniform_values", "inv_log_uniform",
        "inv_log_uniform_values", "normal", "q_normal", "log_normal", "q_log_normal", "beta", "q_beta",
    }  # fmt: skip
    given = {"value": 1, "values": [1], "probabilities": [1.0], "min": 1, "max": 2}
    for name, cls in DISTRIBUTIONS.items():
        spec = spec_of({"distribution": name, **{k: given[k] for k in cls.required}})
        assert list(spec) == ["distribution", *cls.spec_keys()]  # every key, defaults filled
        assert make(spec).name == name


def test_q_rounding_at_the_bounds_sampling_bayes_and_grid():
    """Bounds that are not multiples of q: sampling may step q/2 outside them (W&B's
    distribution), bayes keeps to the multiples inside, grid counts from min (W&B's arange)."""
    d = make(spec_of({"distribution": "q_uniform", "min": 1, "max": 11, "q": 4}))
    assert (d.ppf(0.0), d.ppf(1.0)) == (0, 12)
    assert d.snap(np.array([1.0, 11.0])) == [4, 8] and d.count() == 2
    axis = d.grid()
    assert [axis.value(i) for i in range(axis.size)] == [1, 5, 9]
    f = make(spec_of({"distribution": "q_uniform", "min": 0.05, "max": 0.95, "q": 0.1}))
    assert f.ppf(0.0) == 0.0 and f.snap(np.array([0.05, 0.6, 0.95])) == [0.1, 0.6, 0.9]
    # no multiple of q inside: both round to the nearest one, and bayes counts it
    none_inside = make(spec_of({"distribution": "q_uniform", "min": 0.1, "max": 0.2, "q": 1}))
    assert none_inside.ppf(0.5) == 0 and none_inside.snap(np.array([0.1, 0.2])) == [0, 0]
    assert none_inside.count() == 1


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ({"distribution": "normal", "mu": 1.5, "sigma": 0}, 1.5),
        ({"distribution": "q_normal", "mu": 0.3, "sigma": 0, "q": 1}, 0),
        ({"distribution": "log_normal", "mu": 1, "sigma": 0}, math.e),
        ({"distribution": "beta", "a": 0, "b": 2}, 0.0),
        ({"distribution": "beta", "a": 3, "b": 0}, 1.0),
        ({"values": ["only"]}, "only"),
        ({"value": [1]}, [1]),
    ],
)
def test_fixed_distributions_have_one_value(raw, value):
    d = make(spec_of(raw))
    assert d.is_fixed
    assert all(d.ppf(u) == value for u in (0.0, 0.3, 0.5, 1.0))


def test_beta_with_both_shapes_zero_is_a_coin_in_every_path():
    d = make(spec_of({"distribution": "beta", "a": 0, "b": 0}))
    assert not d.is_fixed and d.count() == 2
    assert d.ppf_array(np.array([0.1, 0.9])).tolist() == [0.0, 1.0] == [d.ppf(0.1), d.ppf(0.9)]
    assert d.cdf_array(np.array([0.0, 1.0])).tolist() == [0.0, 1.0]


def test_array_and_scalar_paths_agree():
    for raw in ({"distribution": "beta", "a": 2, "b": 5}, {"distribution": "normal", "mu": 1, "sigma": 2},
                {"distribution": "log_normal", "mu": -1, "sigma": 0.5}):  # fmt: skip
        d = make(spec_of(raw))
        u = np.linspace(0.01, 0.99, 25)
        np.testing.assert_allclose(d.ppf_array(u), [d.ppf(float(x)) for x in u], rtol=1e-12)
        v = d.ppf_array(u)
        np.testing.assert_allclose(d.cdf_array(v), [d.cdf(float(x)) for x in v], rtol=1e-12, atol=1e-15)


def test_categories_are_found_by_value():
    d = Categorical([1, "a", {"k": [1, 2]}, None])
    assert [d.find(v) for v in (1.0, "a", {"k": [1, 2]}, None, True, "b")] == [0, 1, 2, 3, -1, -1]


def test_normalise_parameters_reports_like_the_config():
    ck = Checker()
    assert normalise_parameters(ck, {"lr": {"min": 0.1, "max": 0.01}, "1a": {"value": 1}}) == {
        "1a": {"distribution": "constant", "value": 1}
    }
    assert ck.errors == [
        "parameters.lr.min: must be less than max (got 0.1 >= 0.01)",
        "parameters.1a: parameter name '1a' is not allowed: a name starts with a letter or _ and holds only "
        "letters, digits, _, . and -",
    ]
