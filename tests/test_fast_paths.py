"""Fast paths must not change results: each is checked against its plain counterpart."""
import torch

from bench.adapters.class_conditional import ClassConditionalModel

UNET = dict(sample_size=8, in_channels=1, out_channels=1, layers_per_block=1,
            block_out_channels=(8, 16), down_block_types=("DownBlock2D", "AttnDownBlock2D"),
            up_block_types=("AttnUpBlock2D", "UpBlock2D"), norm_num_groups=4, attention_head_dim=4)


def _model():
    return ClassConditionalModel.from_config(UNET, {"num_train_timesteps": 50}, ["a", "b", "c"], seed=0)


def test_batched_cfg_equals_two_forwards():
    m = _model()
    m.denoiser.eval()
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([3, 10, 20, 40])
    cond = m.condition([0, 1, 2, 1])
    with torch.no_grad():
        fast = m.guided_noise(x, t, cond, 3.0)
        eps_u = m.predict_noise(x, t, m.null_condition(4))
        eps_c = m.predict_noise(x, t, cond)
    torch.testing.assert_close(fast, eps_u + 3.0 * (eps_c - eps_u), atol=1e-5, rtol=1e-4)


def test_guidance_one_is_plain_conditional_forward():
    m = _model()
    m.denoiser.eval()
    x = torch.randn(2, 1, 8, 8)
    t = torch.tensor(7)
    cond = m.condition([0, 2])
    with torch.no_grad():
        torch.testing.assert_close(m.guided_noise(x, t, cond, 1.0), m.predict_noise(x, t, cond))
