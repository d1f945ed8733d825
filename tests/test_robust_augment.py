"""Robustness augmentation (issue 28): blur, low resolution, JPEG, illumination and noise on real batches."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ferkit.config import load_config, to_toml
from ferkit.data.augment import Augment, _blur, _jpeg, jpeg_tables
from ferkit.errors import FerkitError
from ferkit.evaluation.report import ClassificationReport

OLD = {"shift": 0.1, "rotation": 10.0, "zoom": 0.1, "shear": 5.0, "flip": 0.5, "erasing": 0.5}
ROBUST = {"brightness": 0.2, "contrast": 0.3, "gamma": 0.3, "blur": 0.5, "noise": 0.03, "jpeg": 0.5, "lowres": 0.5}
PROBABILITY_FIELDS = ("blur", "lowres", "jpeg")
CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _checkerboard(n: int = 16, side: int = 48) -> torch.Tensor:
    """1-pixel black/white squares: all of its energy at the highest frequency."""
    yy, xx = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    return ((yy + xx) % 2).float()[None, None].repeat(n, 1, 1, 1)


def _smooth(n: int = 32, side: int = 48, seed: int = 0) -> torch.Tensor:
    """Smooth images (two slow sinusoids around mid-gray), on the 0-255 grid like decoded faces."""
    g = _gen(seed)
    yy, xx = torch.meshgrid(torch.arange(side, dtype=torch.float32), torch.arange(side, dtype=torch.float32),
                            indexing="ij")
    f = (torch.rand(n, 4, generator=g) * 0.05 + 0.01)[:, :, None, None] * 2 * math.pi
    phase = (torch.rand(n, 2, generator=g) * 2 * math.pi)[:, :, None, None]
    x = (0.5 + 0.2 * torch.sin(f[:, 0] * xx + f[:, 1] * yy + phase[:, 0])
         + 0.2 * torch.sin(f[:, 2] * xx - f[:, 3] * yy + phase[:, 1]))
    return ((x * 255).round() / 255)[:, None]


def _high_frequency(x: torch.Tensor) -> torch.Tensor:
    """Per image: the mean absolute difference between horizontal and vertical neighbours."""
    return ((x[..., 1:] - x[..., :-1]).abs().mean((1, 2, 3))
            + (x[..., 1:, :] - x[..., :-1, :]).abs().mean((1, 2, 3)))


def _changed(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per image: whether ``y`` differs from ``x`` anywhere."""
    return (x != y).flatten(1).any(1)


# --- the old settings draw and compute exactly as before -----------------------------------------------------------


def test_old_settings_give_the_output_recorded_before_the_robust_transforms():
    """Recorded from the code before issue 28 (same input, same seed): sums to float32 precision."""
    x = torch.rand(6, 1, 20, 20, generator=_gen(3))
    y = Augment(**OLD)(x, _gen(11))
    assert y.sum().item() == pytest.approx(1151.920166015625, abs=1e-3)
    assert (y * y).sum().item() == pytest.approx(671.2144165039062, abs=1e-3)
    want = [194.64144897460938, 189.96466064453125, 203.61993408203125, 179.14547729492188, 180.07748413085938,
            204.4711151123047]
    assert y.flatten(1).sum(1).tolist() == pytest.approx(want, abs=1e-3)


def test_old_settings_draw_nothing_more_than_before():
    """Affine 5, flip 1, erasing 5 numbers per image: the generator ends where 11 draws of b leave it."""
    b = 6
    g = _gen(11)
    Augment(**OLD)(torch.rand(b, 1, 20, 20), g)
    reference = _gen(11)
    for _ in range(11):
        torch.rand(b, generator=reference)
    assert torch.equal(g.get_state(), reference.get_state())


def test_old_settings_leave_normalised_inputs_unclamped():
    """Inputs outside [0, 1] (model.mean/std not 0/1) pass the old transforms as before: nothing clamps them."""
    x = torch.rand(8, 1, 16, 16, generator=_gen(0)) * 4 - 2
    assert torch.equal(Augment(flip=1.0)(x, _gen(0)), x.flip(-1))
    linear = Augment(blur=1.0, lowres=1.0)(x, _gen(0))
    assert float(linear.min()) < -1 and float(linear.max()) > 1  # blur and lowres are linear: no [0, 1] clamp


@pytest.mark.parametrize("name", sorted(ROBUST))
def test_each_robust_setting_draws_after_the_old_ones_and_only_when_on(name):
    """The old transforms' part of the output is unchanged by a robust setting switched on after them."""
    x = torch.rand(8, 1, 24, 24, generator=_gen(1))
    flipped = Augment(flip=0.5)(x, _gen(5))
    with_robust = Augment(flip=0.5, **{name: 1.0 if name in PROBABILITY_FIELDS else ROBUST[name]})
    g = _gen(5)
    out = with_robust(x, g)
    assert not torch.equal(out, flipped)
    # the same first draw picked the same images to mirror: replaying it and the robust part on them agrees
    g2 = _gen(5)
    torch.rand(8, generator=g2)
    assert torch.equal(Augment(**{k: v for k, v in with_robust.to_dict().items() if k != "flip"})(flipped, g2), out)


# --- each transform does what it says -------------------------------------------------------------------------------


def test_blur_lowers_high_frequency_energy_and_keeps_the_mean():
    x = _checkerboard()
    out = Augment(blur=1.0)(x, _gen(0))
    before, after = _high_frequency(x), _high_frequency(out)
    assert bool((after < before).all())
    assert float(after.mean()) < 0.5 * float(before.mean())
    assert torch.allclose(out.mean((1, 2, 3)), x.mean((1, 2, 3)), atol=0.02)


def test_blur_spreads_a_point_by_the_given_sigma():
    point = torch.zeros(2, 1, 33, 33)
    point[:, :, 16, 16] = 1.0
    sigma = torch.tensor([0.8, 1.5])
    out = _blur(point, sigma, torch.tensor([True, True]))
    offsets = torch.arange(33, dtype=torch.float32) - 16
    assert torch.allclose(out.sum((1, 2, 3)), torch.ones(2), atol=1e-5)
    variance = (out[:, 0].sum(1) * offsets ** 2).sum(1)  # along x, out of the rows' sums
    assert torch.allclose(variance, sigma ** 2, rtol=0.03)


def test_lowres_removes_fine_detail_but_keeps_coarse_shapes():
    fine = Augment(lowres=1.0)(_checkerboard(), _gen(0))
    assert bool((_high_frequency(fine) < 0.25 * _high_frequency(_checkerboard())).all())
    coarse = _smooth()
    out = Augment(lowres=1.0)(coarse, _gen(0))
    assert float((out - coarse).abs().mean()) < 0.02
    assert bool(_changed(coarse, out).all())


def test_lowres_filters_before_shrinking_instead_of_aliasing():
    """Stripes finer than the shrunk image can hold fade away (a camera integrates light); plain resampling
    would fold them into coarser stripes of half their contrast."""
    stripes = 0.5 + 0.5 * torch.cos(2 * math.pi * torch.arange(48.0) / 2.5)
    x = stripes[None, None, None, :].expand(64, 1, 48, 48).contiguous()
    out = Augment(lowres=1.0)(x, _gen(0))
    assert float((out.std((1, 2, 3)) / x.std((1, 2, 3))).mean()) < 0.25


def test_lowres_shrinks_each_image_by_its_own_factor():
    """Faces shrunk further lose more: the per-image error spreads over a range, it is not one value."""
    x = torch.rand(32, 1, 48, 48, generator=_gen(2))
    errors = (Augment(lowres=1.0)(x, _gen(0)) - x).abs().mean((1, 2, 3))
    assert float(errors.max() - errors.min()) > 0.03


def test_jpeg_stays_close_on_the_pixel_grid_and_is_blocky_at_8x8_boundaries():
    x = _smooth()
    out = Augment(jpeg=1.0)(x, _gen(0))
    error = out - x
    assert bool(_changed(x, out).all())
    assert 0.001 < float(error.abs().mean()) < 0.03
    assert torch.allclose(out * 255, (out * 255).round(), atol=1e-4)
    steps = (error[..., 1:] - error[..., :-1]).abs()  # column j to j + 1
    at_boundary = (torch.arange(steps.shape[-1]) % 8) == 7
    assert float(steps[..., at_boundary].mean()) > 1.4 * float(steps[..., ~at_boundary].mean())


@pytest.mark.parametrize("quality", [20, 37, 50, 75, 90])
def test_jpeg_tables_and_output_match_pillow(quality):
    """Against libjpeg through Pillow: the same quantisation table, and nearly the same decoded pixels."""
    x = _smooth(n=4, seed=quality)
    encoded = []
    for image in x:
        buffer = io.BytesIO()
        Image.fromarray((image[0] * 255).round().byte().numpy()).save(buffer, "JPEG", quality=quality)
        encoded.append(Image.open(io.BytesIO(buffer.getvalue())))
    table = torch.tensor(encoded[0].quantization[0], dtype=torch.float32).reshape(8, 8)
    assert torch.equal(jpeg_tables(torch.tensor([float(quality)]))[0], table)
    reference = torch.stack([torch.from_numpy(np.asarray(im, np.float32) / 255)[None] for im in encoded])
    ours = _jpeg(x, torch.full((4,), float(quality)), torch.ones(4, dtype=torch.bool))
    assert float((ours - reference).abs().mean()) < 0.5 / 255  # integer vs float DCT: a rounding step apart
    assert float((ours - reference).abs().mean()) < 0.3 * float((reference - x).abs().mean())


def test_jpeg_handles_sides_that_are_not_multiples_of_8():
    x = torch.rand(2, 3, 45, 50, generator=_gen(0))
    out = _jpeg(x, torch.tensor([30.0, 60.0]), torch.tensor([True, False]))
    assert out.shape == x.shape and torch.equal(out[1], x[1]) and not torch.equal(out[0], x[0])


def test_brightness_shifts_each_image_by_one_amount_within_the_range():
    x = 0.5 + 0.1 * torch.rand(64, 1, 16, 16, generator=_gen(0))  # no clamping at +-0.2
    shift = Augment(brightness=0.2)(x, _gen(0)) - x
    per_image = shift.mean((1, 2, 3))
    assert torch.allclose(shift, per_image[:, None, None, None].expand_as(shift), atol=1e-6)
    assert float(per_image.abs().max()) <= 0.2
    assert float(per_image.min()) < -0.1 and float(per_image.max()) > 0.1  # both ways


def test_contrast_scales_the_spread_around_the_mean():
    x = 0.5 + 0.1 * (torch.rand(64, 1, 16, 16, generator=_gen(0)) - 0.5)
    out = Augment(contrast=0.3)(x, _gen(0))
    ratio = out.std((1, 2, 3)) / x.std((1, 2, 3))
    assert torch.allclose(out.mean((1, 2, 3)), x.mean((1, 2, 3)), atol=1e-5)
    assert float(ratio.min()) >= 0.7 - 1e-4 and float(ratio.max()) <= 1.3 + 1e-4
    assert float(ratio.min()) < 0.85 and float(ratio.max()) > 1.15


def test_gamma_raises_to_one_exponent_per_image_and_moves_the_mean_against_it():
    x = 0.1 + 0.8 * torch.rand(64, 1, 16, 16, generator=_gen(0))
    out = Augment(gamma=0.3)(x, _gen(0))
    exponent = out.log() / x.log()
    per_image = exponent.mean((1, 2, 3))
    assert torch.allclose(exponent, per_image[:, None, None, None].expand_as(exponent), atol=1e-4)
    assert float(per_image.min()) >= math.exp(-0.3) - 1e-4 and float(per_image.max()) <= math.exp(0.3) + 1e-4
    darker = out.mean((1, 2, 3)) < x.mean((1, 2, 3))
    assert torch.equal(darker, per_image > 1)
    assert float(per_image.min()) < 0.9 and float(per_image.max()) > 1.1  # both ways


def test_noise_has_the_given_spread_and_is_shared_by_gray_channels():
    x = torch.full((8, 3, 32, 32), 0.5)
    out = Augment(noise=0.05)(x, _gen(0))
    assert float((out - x).std()) == pytest.approx(0.05, rel=0.05)
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 0], out[:, 2])


def test_everything_stays_in_range_even_at_the_extremes():
    x = torch.cat([torch.zeros(8, 1, 48, 48), torch.ones(8, 1, 48, 48), _checkerboard(16)])
    strong = Augment(brightness=0.9, contrast=0.9, gamma=2.0, blur=1.0, noise=0.5, jpeg=1.0, lowres=1.0)
    out = strong(x, _gen(0))
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert not bool(out.isnan().any())


# --- selection, reproducibility, shape, dtype, device ---------------------------------------------------------------


@pytest.mark.parametrize("name", PROBABILITY_FIELDS)
def test_probability_picks_images_and_leaves_the_others_untouched(name):
    x = torch.rand(64, 1, 24, 24, generator=_gen(4))
    assert Augment(**{name: 0.0})(x, _gen(0)) is x
    assert bool(_changed(x, Augment(**{name: 1.0})(x, _gen(0))).all())
    changed = _changed(x, Augment(**{name: 0.5})(x, _gen(0)))
    assert 16 <= int(changed.sum()) <= 48  # the others are bit-identical to the input


@pytest.mark.parametrize("channels", [1, 3])
def test_robust_augmentation_is_reproducible_and_preserves_shape_dtype_and_gray(channels):
    x = torch.rand(16, 1, 48, 48, generator=_gen(1)).expand(-1, channels, -1, -1)
    aug = Augment(**OLD, **ROBUST)
    a, b, c = aug(x, _gen(7)), aug(x, _gen(7)), aug(x, _gen(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == x.shape and a.dtype == x.dtype and a.device == x.device
    assert all(torch.equal(a[:, 0], a[:, k]) for k in range(channels))  # gray stays gray


def test_draws_are_made_on_the_generator_device_for_a_batch_elsewhere():
    """A batch on another device ("meta" refuses CPU tensors in its arithmetic) takes the same CPU draws."""
    aug = Augment(**OLD, **ROBUST)
    cpu_gen, meta_gen = _gen(3), _gen(3)
    aug(torch.rand(12, 1, 48, 48), cpu_gen)
    out = aug(torch.empty(12, 1, 48, 48, device="meta"), meta_gen)
    assert out.device.type == "meta" and out.shape == (12, 1, 48, 48)
    assert torch.equal(meta_gen.get_state(), cpu_gen.get_state())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_gpu_batch_matches_the_cpu_batch():
    aug = Augment(**OLD, **ROBUST)
    x = torch.rand(32, 1, 48, 48, generator=_gen(1))
    difference = (aug(x.cuda(), _gen(9)).cpu() - aug(x, _gen(9))).abs()
    # same draws; float rounding may move a JPEG pixel a level, rarely a coefficient a quantisation step
    assert float(difference.mean()) < 0.5 / 255 and float((difference > 1.5 / 255).float().mean()) < 0.01


# --- the config --------------------------------------------------------------------------------------------------


def test_config_sets_the_robust_fields_and_writes_them_back(tmp_path):
    path = tmp_path / "robust.toml"
    path.write_text("[augment]\nblur = 0.3\njpeg = 0.25\nnoise = 0.02\n")
    config = load_config(path, ["augment.lowres=0.5", "augment.gamma=0.2"])
    assert (config.augment.blur, config.augment.jpeg, config.augment.lowres) == (0.3, 0.25, 0.5)
    assert (config.augment.noise, config.augment.gamma, config.augment.brightness) == (0.02, 0.2, 0.0)
    (tmp_path / "back.toml").write_text(to_toml(config))
    assert load_config(tmp_path / "back.toml").augment == config.augment


@pytest.mark.parametrize(("override", "message"), [
    ("augment.blur=-0.1", "augment.blur must be >= 0"),
    ("augment.noise=-0.01", "augment.noise must be >= 0"),
    ("augment.shift=-0.1", "augment.shift must be >= 0"),
    ("augment.jpeg=1.5", "augment.jpeg is a probability"),
    ("augment.lowres=nan", "augment.lowres must be >= 0"),
    ("augment.contrast=1.0", "augment.contrast must be < 1"),
    ("augment.blurr=0.5", "valid keys: augment.shift"),
    ("augment.jpeg=true", "jpeg must be float"),
])
def test_config_refuses_bad_robust_settings_by_name(override, message):
    with pytest.raises(FerkitError, match=message.replace(".", r"\.")):
        load_config(None, [override])


def test_config_refuses_unit_range_settings_on_normalised_inputs_but_not_blur():
    with pytest.raises(FerkitError, match=r"augment\.gamma works on inputs in \[0, 1\]"):
        load_config(None, ["model.mean=0.5", "model.std=0.5", "augment.gamma=0.2"])
    assert load_config(None, ["model.mean=0.5", "model.std=0.5", "augment.blur=0.2"]).augment.blur == 0.2


def test_the_robust_student_config_differs_from_the_first_only_in_augmentation_and_name():
    base = load_config(CONFIGS / "student_cached_kd.toml")
    robust = load_config(CONFIGS / "student_cached_kd_robust.toml")
    assert robust.name != base.name and robust.run_dir != base.run_dir
    assert robust.data == base.data and robust.model == base.model and robust.train == base.train
    old = {k: v for k, v in robust.augment.to_dict().items() if k in OLD}
    assert old == {k: v for k, v in base.augment.to_dict().items() if k in OLD}
    assert all(getattr(robust.augment, name) > 0 for name in ROBUST)


# --- the evaluation report names its weakest class (CK+48 zero-shot check) -----------------------------------------


def test_report_names_the_lowest_recall_among_the_classes_present():
    labels = ("angry", "happy", "sad", "neutral")  # neutral absent, as in CK+48: its recall 0 must not count
    y_true = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]
    y_pred = [0, 0, 0, 3, 1, 1, 1, 1, 2, 3, 3, 0]  # recalls: angry 0.75, happy 1.0, sad 0.25
    report = ClassificationReport.from_predictions(y_true, y_pred, labels)
    assert report.lowest_recall == ("sad", 0.25)
    assert "lowest class recall: sad 0.2500" in report.to_text()
