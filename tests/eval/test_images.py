"""Image metrics: radially averaged power spectrum and pixel histograms."""

import numpy as np

from audiodiff.eval.images import pixel_histogram_distance, power_spectrum_distance, radial_power_spectrum


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
