"""Image metrics: radially averaged power spectrum and pixel histograms."""

import numpy as np
import pytest

from audiodiff.eval.images import (
    pixel_histogram_distance,
    power_spectrum_distance,
    radial_power_spectrum,
    spectrum_band_errors,
)


def test_radial_spectrum_of_white_noise_is_flat_and_of_a_board_peaks():
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (200, 1, 32, 32)).astype(np.uint8)
    spectrum = radial_power_spectrum(noise)[1:]
    assert spectrum.max() / spectrum.min() < 1.3
    board = np.kron((np.indices((4, 4)).sum(0) % 2), np.ones((8, 8)))[None, None] * 255
    peak = int(np.argmax(radial_power_spectrum(board.astype(np.uint8))[1:])) + 1
    assert peak == 32 // 16  # an 8-pixel square is a period of 16 pixels: radius 32 / 16 = 2


def test_distances_zero_on_identical_sets_and_separating():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (50, 1, 16, 16)).astype(np.uint8)
    assert power_spectrum_distance(a, a) == 0 and pixel_histogram_distance(a, a) == 0
    smooth = np.repeat(np.repeat(a[:, :, ::4, ::4], 4, axis=2), 4, axis=3)  # less high-frequency power
    assert power_spectrum_distance(a, smooth) > 0.3
    dark, light = np.zeros_like(a), np.full_like(a, 255)
    assert pixel_histogram_distance(dark, light) == 1.0


def test_band_errors_are_signed_db_per_third_of_the_radii():
    ref = np.linspace(5.0, 0.1, 9)  # a 16 x 16 spectrum: DC and radii 1..8
    gen = ref * np.array([7, 1, 1, 1, 2, 2, 2, 1, 1])  # twice the power at radii 4-6 only (DC is not scored)
    bands = spectrum_band_errors(ref, gen, (16, 16))
    assert [b["band"] for b in bands] == ["low", "mid", "high"]
    assert [b["radii"] for b in bands] == [[1, 3], [4, 6], [7, 8]]
    assert [b["cycles_per_pixel"] for b in bands] == [[1 / 16, 4 / 16], [4 / 16, 7 / 16], [7 / 16, 9 / 16]]
    assert [b["error_db"] for b in bands] == pytest.approx([0.0, 10 * np.log10(2), 0.0], abs=1e-9)  # +3.01 dB
    half = spectrum_band_errors(ref, ref * np.r_[1, 1, 1, 1, 1, 1, 1, 0.5, 0.5], (16, 16))
    assert half[2]["error_db"] == pytest.approx(-10 * np.log10(2))  # less power: negative
    assert [b["radii"] for b in spectrum_band_errors(ref[:8], ref[:8], (14, 14))] == [[1, 3], [4, 5], [6, 7]]


def test_band_errors_of_images_too_small_for_three_bands_are_none_and_non_square_edges_name_their_axis():
    ref = np.linspace(5.0, 0.1, 9)
    assert spectrum_band_errors(ref[:3], ref[:3], (4, 4)) == []  # 2 rings above DC: no bands (was a ValueError)
    # 8 x 16: rings end at radius 4, the height's Nyquist; ring r is r / 8 cycles/pixel vertically, r / 16 across
    tall = spectrum_band_errors(ref[:5], ref[:5], (8, 16))
    assert [(b["radii"], b["cycles_per_pixel"]) for b in tall] == [([1, 2], [1 / 8, 3 / 8]), ([3, 3], [3 / 8, 4 / 8]),
                                                                  ([4, 4], [4 / 8, 5 / 8])]  # fmt: skip
    assert {b["cycles_per_pixel_along"] for b in tall} == {"height"}
    assert spectrum_band_errors(ref[:5], ref[:5], (16, 8))[0]["cycles_per_pixel_along"] == "width"
    assert spectrum_band_errors(ref, ref, (16, 16))[0]["cycles_per_pixel_along"] == "height and width"


def test_band_errors_of_image_sets_zero_when_equal_and_plus_3db_where_the_power_doubles():
    rng = np.random.default_rng(2)
    ref = rng.normal(127.5, 30, (40, 1, 16, 16))
    yy, xx = np.indices((16, 16))
    ring = np.hypot(yy - 8, xx - 8).astype(int)  # radial_power_spectrum's rings (fftshift order)
    gain = np.fft.ifftshift(np.where(ring >= 7, np.sqrt(2), 1.0))  # amplitude x sqrt(2) = power x 2, radii 7-8
    gen = 127.5 + np.fft.ifft2(np.fft.fft2(ref - 127.5) * gain).real
    spectrum = radial_power_spectrum(ref)
    assert [b["error_db"] for b in spectrum_band_errors(spectrum, spectrum, (16, 16))] == [0.0, 0.0, 0.0]
    errors = [b["error_db"] for b in spectrum_band_errors(spectrum, radial_power_spectrum(gen), (16, 16))]
    assert errors == pytest.approx([0.0, 0.0, 10 * np.log10(2)], abs=1e-9)
