"""Device selection for the predictor: auto | cpu | cuda | cuda:N, checked on any machine."""

import pytest
import torch

from aligned.errors import InputError
from aligned.predictor.device import amp_dtype, autocast, resolve_device


@pytest.fixture
def cuda_devices(monkeypatch):
    """Pretend this machine has ``n`` CUDA devices (0 means no CUDA)."""

    def pretend(n: int) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n)

    return pretend


def test_cpu_is_always_the_cpu(cuda_devices):
    cuda_devices(2)
    assert resolve_device("cpu") == torch.device("cpu")


def test_auto_picks_cuda_when_present(cuda_devices):
    cuda_devices(1)
    assert resolve_device("auto") == torch.device("cuda", 0)


def test_auto_falls_back_to_cpu_without_cuda(cuda_devices):
    cuda_devices(0)
    assert resolve_device("auto") == torch.device("cpu")


def test_cuda_and_cuda_index_name_devices(cuda_devices):
    cuda_devices(2)
    assert resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device(" CUDA:1 ") == torch.device("cuda", 1)
    assert resolve_device(torch.device("cuda", 1)) == torch.device("cuda", 1)


def test_cuda_without_cuda_is_an_input_error(cuda_devices):
    cuda_devices(0)
    with pytest.raises(InputError, match="CUDA is not available"):
        resolve_device("cuda")


def test_cuda_index_beyond_the_devices_is_an_input_error(cuda_devices):
    cuda_devices(2)
    with pytest.raises(InputError, match="has 2 CUDA devices"):
        resolve_device("cuda:2")


@pytest.mark.parametrize(
    "spec", ["gpu", "cuda:", "cuda:-1", "cpu:0", "auto:1", "mps", "", "cuda:x"]
)
def test_malformed_device_strings_are_input_errors(spec):
    with pytest.raises(InputError, match="not one of auto, cpu, cuda, cuda:N"):
        resolve_device(spec)


def test_mixed_precision_is_off_on_the_cpu():
    cpu = torch.device("cpu")
    assert amp_dtype(cpu) is None
    with autocast(cpu, None):
        assert not torch.is_autocast_enabled("cpu")
