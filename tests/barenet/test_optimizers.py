"""Optimisers and schedules: closed-form steps, convergence, clipping, exact resumption, closed-form schedules."""
from __future__ import annotations

import math

import numpy as np
import pytest

import barenet as bn
from barenet.optimizers import optimizer_from_config, optimizer_name
from barenet.schedules import schedule_from_config, schedule_to_config

A = np.array([1.0, 10.0])  # f(x) = 0.5 * sum(A * x^2): a quadratic with condition number 10


def _minimise(opt, steps, x0=(1.0, 1.0)):
    x = np.array(x0)
    for _ in range(steps):
        opt.step(x, A * x)  # gradient of the quadratic
    return x


def test_plain_sgd_step_is_minus_lr_times_gradient():
    p, g = np.array([1.0, -2.0]), np.array([0.5, 4.0])
    bn.SGD(0.1).step(p, g)
    np.testing.assert_allclose(p, [1.0 - 0.05, -2.0 - 0.4])


def test_momentum_and_nesterov_first_two_steps_by_hand():
    # g = 1 each step, lr = 0.1, mu = 0.9
    # classical: v1 = -0.1, x1 = -0.1;  v2 = 0.9 * -0.1 - 0.1 = -0.19, x2 = -0.29
    # Nesterov:  x1 = mu v1 - lr g = -0.09 - 0.1 = -0.19;  x2 = x1 + mu v2 - lr g = -0.19 - 0.171 - 0.1 = -0.461
    for nesterov, expected in [(False, [-0.1, -0.29]), (True, [-0.19, -0.461])]:
        opt, p = bn.SGD(0.1, momentum=0.9, nesterov=nesterov), np.zeros(1)
        seen = []
        for _ in range(2):
            opt.step(p, np.ones(1))
            seen.append(p[0])
        np.testing.assert_allclose(seen, expected, rtol=1e-12)


@pytest.mark.parametrize("opt, steps", [
    (bn.SGD(0.15), 200),
    (bn.SGD(0.05, momentum=0.9), 300),
    (bn.SGD(0.05, momentum=0.9, nesterov=True), 300),
    (bn.RMSprop(bn.ExponentialDecay(0.01, rate=0.01, steps=1000)), 2000),  # constant lr would orbit at ~lr
    (bn.Adam(0.05), 2000),
    (bn.AdamW(0.05, weight_decay=1e-3), 2000),
])
def test_converges_on_a_quadratic(opt, steps):
    x = _minimise(opt, steps)
    assert np.abs(x).max() < 1e-3, x


def test_momentum_beats_plain_sgd_at_the_same_learning_rate():
    plain = np.abs(_minimise(bn.SGD(0.01), 100)).max()
    heavy = np.abs(_minimise(bn.SGD(0.01, momentum=0.9), 100)).max()
    nesterov = np.abs(_minimise(bn.SGD(0.01, momentum=0.9, nesterov=True), 100)).max()
    assert heavy < plain / 10 and nesterov < plain / 10


@pytest.mark.parametrize("cls", [bn.Adam, bn.AdamW])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_first_step_moves_each_weight_by_about_the_learning_rate(cls, dtype):
    # m1 = (1 - b1) g, v1 = (1 - b2) g^2, so m_hat / sqrt(v_hat) = g / |g|: every weight moves by lr,
    # whatever its gradient's scale (up to eps / |g|)
    lr = 1e-3
    g = np.array([1e-3, -1.0, 1e3, -0.37, 42.0], dtype=dtype)
    p = np.zeros(5, dtype=dtype)
    opt = cls(lr, weight_decay=0.0) if cls is bn.AdamW else cls(lr)
    opt.step(p, g)
    np.testing.assert_allclose(p, -lr * np.sign(g), rtol=1e-4)
    assert p.dtype == dtype


def test_adamw_decoupled_decay_with_zero_gradient():
    p = np.array([2.0, -1.0])
    opt = bn.AdamW(0.1, weight_decay=0.5)
    for _ in range(3):
        opt.step(p, np.zeros(2))
    np.testing.assert_allclose(p, np.array([2.0, -1.0]) * (1 - 0.1 * 0.5) ** 3)


def test_gradient_clipping_caps_the_global_norm():
    g = np.array([3.0, 4.0, 0.0, 0.0])  # norm 5
    p = np.zeros(4)
    bn.SGD(1.0, clip_norm=1.0).step(p, g.copy())
    assert np.linalg.norm(p) == pytest.approx(1.0)
    np.testing.assert_allclose(p, -g / 5)  # same direction, shorter step
    p = np.zeros(4)
    small = np.array([0.3, 0.4, 0.0, 0.0])  # norm 0.5 < 1: untouched
    bn.SGD(1.0, clip_norm=1.0).step(p, small.copy())
    np.testing.assert_allclose(p, -small)


def test_first_update_uses_the_schedule_at_step_0():
    # StepDecay(1, 0.5, every=1): lr(0) = 1, lr(1) = 0.5, lr(2) = 0.25; with g = 1 the moves are exactly those
    opt, p = bn.SGD(bn.StepDecay(1.0, drop=0.5, every=1)), np.zeros(1)
    moves = []
    for _ in range(3):
        before = p[0]
        opt.step(p, np.ones(1))
        moves.append(before - p[0])
    assert moves == [1.0, 0.5, 0.25]
    assert opt.current_lr == 0.125  # the rate the next (4th) step will use


def test_schedules_closed_forms():
    assert [bn.Constant(0.3)(t) for t in (0, 10**6)] == [0.3, 0.3]
    step = bn.StepDecay(1.0, drop=0.1, every=10)
    assert [step(t) for t in (0, 9, 10, 25)] == pytest.approx([1.0, 1.0, 0.1, 0.01])
    exp = bn.ExponentialDecay(2.0, rate=0.5, steps=100)
    assert [exp(t) for t in (0, 50, 100, 300)] == pytest.approx([2.0, 2.0 * 0.5**0.5, 1.0, 0.25])


def test_cosine_decay_with_warmup_closed_form():
    lr, lr_min, warmup, total = 1.0, 0.1, 4, 104
    cos = bn.CosineDecay(lr, total_steps=total, warmup=warmup, lr_min=lr_min)
    # warm-up: lr * (t + 1) / warmup for t = 0..3
    assert [cos(t) for t in range(4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    # then lr_min + (lr - lr_min) (1 + cos(pi u)) / 2, u = (t - warmup) / (total - warmup)
    assert cos(4) == pytest.approx(1.0)
    assert cos(4 + 50) == pytest.approx(lr_min + (lr - lr_min) * 0.5)         # u = 1/2
    assert cos(4 + 25) == pytest.approx(lr_min + (lr - lr_min) * (1 + math.cos(math.pi / 4)) / 2)
    assert cos(total) == pytest.approx(lr_min) and cos(10 * total) == pytest.approx(lr_min)
    values = [cos(t) for t in range(4, total)]
    assert all(a >= b for a, b in zip(values, values[1:]))  # monotone after warm-up
    no_warmup = bn.CosineDecay(0.5, total_steps=10)
    assert no_warmup(0) == pytest.approx(0.5) and no_warmup(10) == pytest.approx(0.0)


def test_schedule_config_round_trip():
    for sched in [bn.Constant(0.1), bn.StepDecay(0.1, 0.5, 7), bn.ExponentialDecay(0.2, 0.9, 11),
                  bn.CosineDecay(0.3, 100, warmup=5, lr_min=0.01)]:
        twin = schedule_from_config(schedule_to_config(sched))
        assert type(twin) is type(sched) and [twin(t) for t in (0, 3, 50)] == [sched(t) for t in (0, 3, 50)]
    assert schedule_from_config(schedule_to_config(0.01)) == 0.01
    with pytest.raises(ValueError, match="only barenet.schedules objects"):
        schedule_to_config(lambda t: 0.1)
    with pytest.raises(ValueError, match="unknown schedule 'Evil'"):
        schedule_from_config({"class": "Evil", "config": {}})


@pytest.mark.parametrize("make", [
    lambda: bn.SGD(0.05, momentum=0.9, nesterov=True),
    lambda: bn.RMSprop(0.01),
    lambda: bn.Adam(bn.CosineDecay(0.05, total_steps=20, warmup=3)),
    lambda: bn.AdamW(0.05, weight_decay=0.1, clip_norm=0.5),
])
def test_state_dict_resumes_exactly(make):
    rng = np.random.default_rng(0)
    grads = rng.standard_normal((10, 6))
    straight, p = make(), np.ones(6)
    for g in grads:
        straight.step(p, g.copy())
    first, q = make(), np.ones(6)
    for g in grads[:5]:
        first.step(q, g.copy())
    first.lr_scale = 1.0
    saved = first.state_dict()
    for buf in first.state.values():  # the saved state is a copy: later changes must not leak into it
        buf += 123.0
    resumed = make()
    resumed.load_state_dict(saved)
    assert resumed.step_count == 5
    for g in grads[5:]:
        resumed.step(q, g.copy())
    np.testing.assert_array_equal(p, q)


def test_load_state_dict_rejects_foreign_buffers():
    with pytest.raises(ValueError, match=r"Adam state needs buffers \('m_sum', 'v_sum'\)"):
        bn.Adam().load_state_dict({"step_count": 1, "buffers": {"velocity": np.zeros(2)}})


def test_lr_scale_multiplies_the_rate():
    opt = bn.SGD(0.1)
    opt.lr_scale = 0.5
    p = np.zeros(1)
    opt.step(p, np.ones(1))
    assert p[0] == pytest.approx(-0.05)


def test_moments_are_flushed_before_they_become_subnormal():
    opt, p = bn.Adam(1e-3), np.zeros(3, dtype=np.float32)
    opt.step(p, np.array([1.0, 0.0, 0.0], dtype=np.float32))
    opt.state["m_sum"][1] = 1e-35  # would decay into float32's subnormal range
    for _ in range(99):
        opt.step(p, np.zeros(3, dtype=np.float32))
    assert opt.step_count == 100 and opt.state["m_sum"][1] == 0.0 and opt.state["m_sum"][0] != 0.0


def _textbook_adam(p, grads, lr, b1, b2, eps, weight_decay=0.0):
    """Kingma & Ba's Algorithm 1 in float64, written the long way (moving averages, bias-corrected copies)."""
    p, m, v = p.astype(np.float64), np.zeros(len(p)), np.zeros(len(p))
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
        p = p - lr * weight_decay * p
    return p, m, v


@pytest.mark.parametrize("cls", [bn.Adam, bn.AdamW])
def test_adam_moving_sums_take_the_textbook_step(cls):
    rng = np.random.default_rng(3)
    grads = [rng.standard_normal(50) * 10.0 ** rng.integers(-4, 2) for _ in range(40)]
    kwargs = dict(beta1=0.8, beta2=0.99, eps=1e-6) | ({"weight_decay": 0.1} if cls is bn.AdamW else {})
    opt, p = cls(0.01, **kwargs), rng.standard_normal(50)
    start = p.copy()
    for g in grads:
        opt.step(p, g.copy())
    want, m, v = _textbook_adam(start, grads, 0.01, 0.8, 0.99, 1e-6, kwargs.get("weight_decay", 0.0))
    np.testing.assert_allclose(p, want, rtol=1e-12, atol=1e-13)
    # and the state is what its name says: the moving averages times 1 / (1 - beta)
    np.testing.assert_allclose(opt.state["m_sum"] * (1 - 0.8), m, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(opt.state["v_sum"] * (1 - 0.99), v, rtol=1e-12, atol=1e-18)


@pytest.mark.parametrize("make", [
    lambda: bn.SGD(0.1),
    lambda: bn.SGD(0.1, momentum=0.9, nesterov=True),
    lambda: bn.RMSprop(1e-2),
    lambda: bn.Adam(1e-2),
    lambda: bn.AdamW(1e-2, weight_decay=0.1),
])
def test_a_long_buffer_is_stepped_block_by_block_with_the_same_result(make, monkeypatch):
    """Cache-sized blocks (STEP_BLOCK) change where the arithmetic runs, never its result: bit-identical."""
    rng = np.random.default_rng(0)
    start = rng.standard_normal(1000).astype(np.float32)
    grads = [rng.standard_normal(1000).astype(np.float32) for _ in range(5)]
    whole, blocked = make(), make()
    blocked.step_block = 64  # 16 blocks (more than MIN_BLOCKS), the last one short (1000 = 15 * 64 + 40)
    p_whole, p_blocked = start.copy(), start.copy()
    calls = []
    update = type(blocked)._update
    monkeypatch.setattr(blocked, "_update", lambda p, g, s, lr: (calls.append(p.size), update(blocked, p, g, s, lr)))
    for g in grads:
        whole.step(p_whole, g.copy())
        blocked.step(p_blocked, g.copy())
    assert calls[:16] == [64] * 15 + [40]  # block by block, covering the buffer once
    np.testing.assert_array_equal(p_blocked, p_whole)
    for name, buf in whole.state.items():
        np.testing.assert_array_equal(blocked.state[name], buf)


def test_small_and_mid_sized_buffers_are_stepped_whole(monkeypatch):
    """Blocks pay only once the buffer outgrows the cache: up to MIN_BLOCKS blocks' worth is one call."""
    from barenet.optimizers import MIN_BLOCKS, STEP_BLOCK

    opt = bn.Adam()
    assert opt.step_block == STEP_BLOCK
    sizes = []
    update = bn.Adam._update
    monkeypatch.setattr(opt, "_update", lambda p, g, s, lr: (sizes.append(p.size), update(opt, p, g, s, lr)))
    for n in (10_117, MIN_BLOCKS * STEP_BLOCK, MIN_BLOCKS * STEP_BLOCK + 1):  # NSL-KDD's network, the limit, past it
        opt.state, sizes[:] = {}, []
        opt.step(np.zeros(n, np.float32), np.ones(n, np.float32))
        assert sizes == ([n] if n <= MIN_BLOCKS * STEP_BLOCK else [STEP_BLOCK] * MIN_BLOCKS + [1])


def test_a_mis_sized_state_is_refused_in_blocks_too():
    opt = bn.Adam()
    opt.step_block = 8
    opt.load_state_dict({"step_count": 3, "buffers": {"m_sum": np.zeros(160), "v_sum": np.zeros(160)}})
    with pytest.raises(ValueError, match="state 'm_sum' has shape"):
        opt.step(np.zeros(80), np.ones(80))  # 80 = 10 blocks: slices of the longer state would not complain


def test_step_block_is_never_saved(tmp_path):
    """How a step is cut into blocks is not part of the model: a changed one saves, loads and clones."""
    X = np.random.default_rng(0).standard_normal((32, 4)).astype(np.float32)
    y = np.arange(32) % 2
    net = bn.build_mlp(4, (3,), 2, seed=0)
    net.optimizer.step_block, net.optimizer.min_blocks = 2, 1
    net.fit(X, y, epochs=1, batch_size=8)
    assert "step_block" not in net.optimizer.get_config() and "min_blocks" not in net.optimizer.get_config()
    net.save(tmp_path / "m.npz")
    loaded = bn.load(tmp_path / "m.npz")
    assert (loaded.optimizer.step_block, loaded.optimizer.min_blocks) == (bn.Adam.step_block, bn.Adam.min_blocks)
    np.testing.assert_array_equal(loaded.flat_params, net.flat_params)
    net.clone()


def test_adam_loads_a_textbook_state_as_moving_sums():
    rng = np.random.default_rng(4)
    grads = [rng.standard_normal(20) for _ in range(12)]
    opt, p = bn.Adam(0.01), rng.standard_normal(20)
    for g in grads[:6]:
        opt.step(p, g.copy())
    old_style = {"step_count": 6, "lr_scale": 1.0,  # what format-version-1 files hold: the moving averages
                 "buffers": {"m": opt.state["m_sum"] * 0.1, "v": opt.state["v_sum"] * 0.001}}
    twin, q = bn.Adam(0.01), p.copy()
    twin.load_state_dict(old_style)
    assert set(twin.state) == {"m_sum", "v_sum"}
    for g in grads[6:]:
        opt.step(p, g.copy())
        twin.step(q, g.copy())
    np.testing.assert_allclose(q, p, rtol=1e-12)


def test_config_round_trip_and_names():
    for opt in [bn.SGD(0.2, momentum=0.5), bn.RMSprop(0.003, rho=0.8), bn.Adam(bn.StepDecay(0.1, 0.5, 3), beta1=0.8),
                bn.AdamW(0.01, weight_decay=0.2, clip_norm=2.0)]:
        twin = optimizer_from_config(optimizer_name(opt), opt.get_config())
        assert type(twin) is type(opt) and twin.get_config() == opt.get_config()


def test_bad_optimizer_arguments():
    with pytest.raises(ValueError, match=r"unknown optimizer 'adagrad'.*'adam'"):
        bn.get_optimizer("adagrad")
    with pytest.raises(ValueError, match="learning_rate must be > 0"):
        bn.Adam(0.0)
    with pytest.raises(ValueError, match="Nesterov momentum needs momentum > 0"):
        bn.SGD(0.1, nesterov=True)
    assert isinstance(bn.get_optimizer("SGD", momentum=0.9), bn.SGD)
