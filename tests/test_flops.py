"""FLOP counting and MFU: the pure pieces and properties of the counts (no timing)."""
import pytest
import torch

from bench.core.adapters.class_conditional import ClassConditionalModel
from bench.core.fast import set_attention
from bench.runner.flops import count_flops, mfu, peak_tflops, sampling_step, training_step
from tests.t2i_fixtures import build_tiny_sd

UNET = dict(sample_size=8, in_channels=1, out_channels=1, layers_per_block=1,
            block_out_channels=(8, 16), down_block_types=("DownBlock2D", "AttnDownBlock2D"),
            up_block_types=("AttnUpBlock2D", "UpBlock2D"), norm_num_groups=4, attention_head_dim=4)


@pytest.mark.parametrize("name, precision, peak", [
    ("NVIDIA H100 80GB HBM3", "bf16", 989.4), ("NVIDIA H100 PCIe", "bf16", 756.0), ("NVIDIA H100 80GB HBM3", "fp32", 66.9),
    ("NVIDIA H200", "bf16", 989.4), ("NVIDIA A100-SXM4-80GB", "bf16", 312.0), ("NVIDIA A100-PCIE-40GB", "tf32", 156.0),
])
def test_peak_table_by_device_name(name, precision, peak):
    assert peak_tflops(name, precision) == peak


def test_unknown_devices_have_no_peak_and_no_mfu():
    assert peak_tflops(None, "bf16") is None and peak_tflops("cpu", "fp32") is None
    assert peak_tflops("NVIDIA GeForce RTX 4090", "bf16") is None
    assert mfu(1e12, 1.0, None) is None


def test_mfu_is_achieved_over_peak():
    assert mfu(989.4e12 * 2, 2.0, 989.4) == pytest.approx(1.0)
    assert mfu(1e12, 1.0, 100.0) == pytest.approx(0.01)


def test_linear_layer_count_is_two_mnk():
    layer = torch.nn.Linear(8, 16, bias=False)
    x = torch.randn(4, 8)
    assert count_flops(lambda: layer(x)) == 2 * 4 * 8 * 16


def test_counts_do_not_depend_on_the_attention_processor():
    m = ClassConditionalModel.from_config(UNET, {"num_train_timesteps": 50}, ["a", "b", "c"], seed=0)
    counts = {}
    for sdpa in (True, False):
        set_attention(m.denoiser, sdpa)
        counts[sdpa] = (count_flops(sampling_step(m, 4)), count_flops(training_step(m, 4)))
    assert counts[True][0] == counts[False][0]
    assert counts[True][1] == pytest.approx(counts[False][1], rel=0.01)
    forward = counts[True][0] / 2  # the CFG step is one forward at 2×batch
    assert 2 * forward < counts[True][1] < 3.5 * forward  # backward ≈ 2× forward


def test_sampling_step_counts_the_unet_only(tmp_path):
    from bench.core.adapters.text_to_image import TextToImageModel

    m = TextToImageModel.from_pretrained_sd(str(build_tiny_sd(tmp_path / "sd")))
    m._cache = {}
    step = sampling_step(m, 2)
    assert count_flops(step) == count_flops(step)  # the null prompt was encoded before counting
