"""Where the predictor runs: device strings, and mixed precision on CUDA only."""

from __future__ import annotations

import contextlib
import re

import torch

from aligned.errors import InputError

_DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda)(?::(\d+))?$")


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """Turn ``auto | cpu | cuda | cuda:N`` into a :class:`torch.device`.

    Parameters
    ----------
    spec : str or torch.device
        ``"auto"`` picks CUDA device 0 when CUDA is available, else the CPU; ``"cuda"`` is
        CUDA device 0; ``"cuda:N"`` is device ``N``.  Case and surrounding spaces are ignored.

    Returns
    -------
    torch.device

    Raises
    ------
    InputError
        If the string is none of the above, or names a CUDA device this machine lacks.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    text = str(spec).strip().lower()
    match = _DEVICE_PATTERN.match(text)
    if match is None or (match.group(1) != "cuda" and match.group(2) is not None):
        raise InputError(f"device {spec!r} is not one of auto, cpu, cuda, cuda:N")
    kind, index = match.group(1), match.group(2)
    if kind == "cpu":
        return torch.device("cpu")
    if kind == "auto":
        return torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    if not torch.cuda.is_available():
        raise InputError(f"device {spec!r} was asked for, but CUDA is not available here")
    number = int(index or 0)
    count = torch.cuda.device_count()
    if number >= count:
        raise InputError(
            f"device {spec!r} was asked for, but this machine has {count} CUDA devices"
        )
    return torch.device("cuda", number)


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``device``: bf16 where the GPU supports it, else fp16; None on CPU.

    Mixed precision is used on CUDA only: on the CPU it is slower and changes results, which
    would break the promise that CPU training is reproducible bit for bit.
    """
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """An autocast context for ``dtype`` on ``device``, or a no-op when ``dtype`` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
