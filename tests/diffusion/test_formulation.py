"""The Formulation protocol: what DDPM and EDM declare so that callers never ask which one they hold."""

import torch

from audiodiff.diffusion import DDPM, EDM, Formulation


def test_formulations_declare_what_callers_used_to_ask_isinstance_for():
    ddpm, edm = DDPM.from_preset("diffwave"), EDM()
    assert isinstance(ddpm, Formulation) and isinstance(edm, Formulation)
    u, z = torch.tensor([0.0, 0.5, 0.999]), torch.tensor([-1.0, 0.0, 1.0])
    assert ddpm.levels_from(u).tolist() == [0, 25, 49] and ddpm.level_name == "t" and ddpm.level_draw == "u"
    torch.testing.assert_close(edm.levels_from(z), (-1.2 + 1.2 * z).exp())
    assert edm.level_name == "sigma" and edm.level_draw == "z" and edm.step_sigmas(6) is None
    assert len(ddpm.step_sigmas(6)) == 7 and ddpm.fractional_steps(ddpm.step_sigmas(6)) == []
