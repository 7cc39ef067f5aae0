"""Models: the device and precision to run on, loading checkpoints and image processors,
and building the model to fine-tune (the built-in small ViT, or a pretrained one with a
new head).

Precision ``auto`` (:func:`precision_used`) means bf16 on CUDA GPUs with bf16 support and on
CPUs with AMX or AVX512-BF16 (where bf16 matmuls are native, :func:`bf16_is_native`); for
``embed`` on other CPUs with VNNI int8 dot products, int8 linear layers (:func:`int8_is_faster`,
:mod:`spotreview.embedding.quantize`); fp32 elsewhere. During training the weights stay fp32 and
autocast runs the matmuls in bf16 (layer norms / softmax in fp32); post-hoc ``embed`` casts each
loaded snapshot to bf16 instead, so everything runs in bf16.

torch and transformers are imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from spotreview.defaults import DEVICES, PRECISIONS
from spotreview.embedding.sources import hub_offline, hub_unreachable
from spotreview.errors import ModelError, SpotreviewError, first_line
from spotreview.rundir.run import Run

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)
_GENERIC_LABEL = re.compile(r"^LABEL_\d+$")

WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
SMALL_VIT_LR = 1e-3  # from scratch, small model: a high rate
PRETRAINED_LR = 5e-5  # fine-tuning pretrained weights: the usual rate
# 8x8 patches of the 32x32 upscaled digits (2x2 original pixels each): 16 tokens + CLS;
# 4x4 patches were slower on digits and no more accurate after the same epochs.
SMALL_VIT = dict(
    image_size=32,
    patch_size=8,
    hidden_size=64,
    num_hidden_layers=4,
    num_attention_heads=4,
    intermediate_size=128,
)


# --- device and precision ----------------------------------------------------------


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in DEVICES:
        raise SpotreviewError(f"unknown device {device!r}; expected auto, cpu or cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise SpotreviewError("device cuda was asked for but torch sees no CUDA GPU; use --device cpu or auto")
    return torch.device(device)


def bf16_is_native(device: torch.device | str) -> bool:
    """Whether bf16 matmuls run natively (not emulated) on ``device``: CUDA GPUs with bf16
    support; CPUs with AVX512-BF16 or AMX, unless ``ONEDNN_MAX_CPU_ISA`` (or its older name
    ``DNNL_MAX_CPU_ISA``) pins oneDNN below ``AVX512_CORE_BF16``, as when a CPU of another
    class is reproduced: oneDNN then emulates bf16."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu" or _onednn_isa_below_bf16():
        return False
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


# oneDNN's ISA names below AVX512_CORE_BF16 (oneDNN's dnnl_cpu_isa_t); ALL, DEFAULT and any newer
# name leave the choice to the hardware.
_ONEDNN_ISAS_WITHOUT_BF16 = frozenset(
    ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI")
)


def _onednn_isa_below_bf16() -> bool:
    """Whether ``ONEDNN_MAX_CPU_ISA`` / ``DNNL_MAX_CPU_ISA`` pins oneDNN to an ISA without bf16
    dot products."""
    pinned = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or ""
    return pinned.strip().upper() in _ONEDNN_ISAS_WITHOUT_BF16


def int8_is_faster(device: torch.device | str) -> bool:
    """Whether ``--precision int8`` beats fp32 on ``device``: CPUs with VNNI int8 dot products
    (AVX512-VNNI or AVX-VNNI), unless ``ONEDNN_MAX_CPU_ISA`` pins oneDNN to an ISA without them.
    AVX2 alone keeps fp32 until int8's gain there is confirmed (benchmarks/RESULTS.md); GPUs run bf16."""
    import torch

    if torch.device(device).type != "cpu" or _onednn_isa_below_vnni():
        return False
    return bool(getattr(torch.cpu, "_is_vnni_supported", lambda: False)()) or "avx_vnni" in _cpu_flags()


# oneDNN's ISA names without int8 dot products (VNNI); AVX2_VNNI, AVX512_CORE_VNNI and newer have them
_ONEDNN_ISAS_WITHOUT_VNNI = frozenset(("SSE41", "AVX", "AVX2", "AVX512_CORE"))


def _onednn_isa_below_vnni() -> bool:
    pinned = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or ""
    return pinned.strip().upper() in _ONEDNN_ISAS_WITHOUT_VNNI


def _cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (Linux); empty elsewhere. torch reports
    AVX512-VNNI but not AVX-VNNI (the AVX2-width form of client CPUs)."""
    try:
        with open("/proc/cpuinfo") as f:
            line = next((ln for ln in f if ln.startswith("flags")), "")
    except OSError:
        return set()
    return set(line.partition(":")[2].split())


def precision_used(precision: str, device: torch.device, *, int8: bool = True) -> str:
    """What ``precision`` (auto|fp32|bf16|int8) runs as on ``device``: "fp32", "bf16" or "int8".

    ``auto``: bf16 where :func:`bf16_is_native`, else int8 where ``int8`` is allowed and
    :func:`int8_is_faster`, else fp32. ``int8=False`` (the recorder, which embeds the live
    training model) never picks int8 and refuses it when asked. int8 runs on a CPU only."""
    if precision not in PRECISIONS:
        raise SpotreviewError(f"unknown precision {precision!r}; expected {', '.join(PRECISIONS)}")
    if precision == "int8" and not int8:
        raise SpotreviewError(
            "precision int8 is for `spotreview embed` only: the recorder embeds the model while it trains "
            "and does not quantize it; record with auto, fp32 or bf16, and embed kept checkpoints in int8"
        )
    if precision == "int8" and device.type != "cpu":
        raise SpotreviewError(f"precision int8 runs on the CPU only, not on {device.type}; use --device cpu, or bf16")
    if precision != "auto":
        return precision
    if bf16_is_native(device):
        return "bf16"
    return "int8" if int8 and int8_is_faster(device) else "fp32"


def resolve_precision(precision: str, device: torch.device, *, int8: bool = True) -> torch.dtype | None:
    """The autocast dtype for ``precision`` (auto|fp32|bf16|int8) on ``device``: bf16, or None
    for plain fp32 weights (int8 too: its linear layers are swapped in after loading,
    :func:`spotreview.embedding.quantize.quantize_linears`). See :func:`precision_used`."""
    import torch

    return torch.bfloat16 if precision_used(precision, device, int8=int8) == "bf16" else None


def versions() -> dict[str, str]:
    """Versions of spotreview, torch and transformers, for a run's manifest."""
    import torch
    import transformers

    from spotreview import __version__

    return {"spotreview": __version__, "torch": torch.__version__, "transformers": transformers.__version__}


@contextlib.contextmanager
def transformers_bars(enabled: bool):
    """Silence transformers' own progress bars (weight loading, shard writing) unless ``enabled``."""
    from transformers.utils import logging

    was_enabled = logging.is_progress_bar_enabled()
    if not enabled:
        logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled and not enabled:
            logging.enable_progress_bar()


# --- models --------------------------------------------------------------------------


def _is_classifier(config) -> bool:
    return any(a.endswith("ForImageClassification") for a in (getattr(config, "architectures", None) or []))


def image_model_class(config, name: str, *, classifier: bool | None = None):
    """The Auto class to load ``config`` with, or ``ModelError`` when it is not an image model.

    ``classifier=None`` follows the config's architectures; True requires an
    image-classification model (for fine-tuning).
    """
    from transformers import AutoModel, AutoModelForImageClassification
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING, MODEL_MAPPING

    can_classify = type(config) in MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING
    if classifier or (classifier is None and _is_classifier(config) and can_classify):
        if not can_classify:
            raise ModelError(
                f"{name} is a {config.model_type} model, not an image-classification model; give an image "
                "model such as google/vit-base-patch16-224-in21k, or leave --model out for the built-in small ViT"
            )
        return AutoModelForImageClassification
    try:
        cls = MODEL_MAPPING[type(config)]
    except KeyError:
        cls = None
    if cls is None or getattr(cls, "main_input_name", None) != "pixel_values":
        reads = getattr(cls, "main_input_name", "unknown inputs")
        raise ModelError(
            f"{name} is a {config.model_type} model that reads {reads}, not images; "
            "expected an image model (e.g. a ViTForImageClassification checkpoint)"
        )
    return AutoModel


def load_checkpoint(path: str | Path):
    """Load one saved snapshot (a ``save_pretrained`` / Trainer checkpoint dir) in eval mode.

    Raises ``ModelError`` one-liners for a missing config, missing or corrupt weights, and
    models that do not read images. Never deletes anything.
    """
    from transformers import AutoConfig

    path = Path(path)
    if not (path / "config.json").is_file():
        raise ModelError(
            f"{path} has no config.json; expected a checkpoint saved with save_pretrained or by the Trainer"
        )
    if not any((path / f).is_file() for f in WEIGHT_FILES):
        raise ModelError(
            f"{path} has no weights (model.safetensors or pytorch_model.bin); "
            "save the model there again, or move the directory out of the run"
        )
    try:
        config = AutoConfig.from_pretrained(path)
    except Exception as e:
        raise ModelError(f"could not read {path / 'config.json'}: {first_line(e)}") from e
    cls = image_model_class(config, str(path))
    try:
        model = cls.from_pretrained(path)
    except Exception as e:
        raise ModelError(
            f"could not load the weights in {path} ({first_line(e)}): the file is truncated or corrupt; "
            "save the model there again, or move the directory out of the run"
        ) from e
    return model.eval()


def load_base_model(name: str | Path):
    """The model before fine-tuning (``embed --base-model``): a ``save_pretrained`` directory
    or a hub id, loaded like a checkpoint."""
    from transformers import AutoConfig

    if Path(name).is_dir():
        return load_checkpoint(name)
    why = hub_unreachable()
    if why:
        raise ModelError(f"--base-model {name} is not a model directory and the hub is unreachable ({why})")
    try:
        config = AutoConfig.from_pretrained(name)
        model = image_model_class(config, str(name)).from_pretrained(name)
    except ModelError:
        raise
    except Exception as e:
        raise ModelError(
            f"--base-model {name} is not a model ({first_line(e)}); give a checkpoint directory or a hub id"
        ) from e
    return model.eval()


def label_order(config, class_names, where: str):
    """How to read a classifier's outputs in the run's class order, by class *name*.

    Returns None when output column k already is ``class_names[k]`` (or the model has only
    generic names ``LABEL_k``: then index order is assumed, with a warning), else the index
    array ``order`` with ``probs[:, order]`` in the run's order. Names that do not match the
    run's raise a one-line ``ModelError`` listing the difference.
    """
    import numpy as np

    id2label = getattr(config, "id2label", None) or {}
    names = [str(id2label.get(i, id2label.get(str(i), f"LABEL_{i}"))) for i in range(config.num_labels)]
    class_names = [str(c) for c in class_names]
    if names == class_names:
        return None
    if all(_GENERIC_LABEL.match(n) for n in names):
        logger.warning(
            "%s has no class names (id2label: %s, ...); its outputs are taken in the dataset's class order %s",
            where,
            names[0],
            class_names[:3],
        )
        return None
    missing = [c for c in class_names if c not in names]
    unknown = [n for n in names if n not in class_names]
    if missing or unknown or len(set(names)) != len(names):
        raise ModelError(
            f"the class names of {where} do not match the run's: the model lacks {missing[:5]} and has "
            f"{unknown[:5]} the dataset lacks; embed the dataset that model was trained on"
        )
    logger.info("%s orders its classes differently; probabilities are reordered by class name", where)
    return np.array([names.index(c) for c in class_names])


def load_processor(run: Run, checkpoint: Path | None, processor: str | Path | None = None):
    """``processor`` (a directory or hub id) if given, else the run's ``processor/`` if saved,
    else the checkpoint's own processor files."""
    from transformers import AutoImageProcessor

    if processor is not None:
        try:
            return AutoImageProcessor.from_pretrained(processor)
        except Exception as e:
            raise ModelError(
                f"--processor {processor} is not an image processor ({first_line(e)}); give a directory with "
                "preprocessor_config.json (processor.save_pretrained) or a hub id"
            ) from e
    for where in (run.processor_dir, checkpoint):
        if where is not None and (Path(where) / "preprocessor_config.json").is_file():
            try:
                return AutoImageProcessor.from_pretrained(where)
            except Exception as e:
                raise ModelError(f"could not load the image processor in {where}: {first_line(e)}") from e
    raise ModelError(
        f"no image processor: neither {run.processor_dir} nor {checkpoint} has preprocessor_config.json; "
        f"save one there with processor.save_pretrained({str(run.processor_dir)!r})"
    )


# --- the model to fine-tune -----------------------------------------------------------------


def small_vit(class_names: list[str]):
    """The built-in model: a small randomly initialised ViT for 32x32 images, and its processor."""
    import transformers
    from transformers import ViTConfig, ViTForImageClassification

    config = ViTConfig(
        **SMALL_VIT,
        num_channels=3,
        num_labels=len(class_names),
        id2label=dict(enumerate(class_names)),
        label2id={c: k for k, c in enumerate(class_names)},
    )
    size = {"height": SMALL_VIT["image_size"], "width": SMALL_VIT["image_size"]}
    # Without torchvision, ViTImageProcessor falls back to the PIL one with a warning; ask for it directly.
    processor_cls = getattr(transformers, "ViTImageProcessorPil", None)
    try:
        import torchvision  # noqa: F401

        processor_cls = None
    except ImportError:
        pass
    processor = (processor_cls or transformers.ViTImageProcessor)(size=size)
    return ViTForImageClassification(config), processor


def pretrained(name: str, class_names: list[str]):
    """A hub id or local ``save_pretrained`` directory with a new head for ``class_names``."""
    from transformers import AutoConfig, AutoImageProcessor

    if Path(name).is_dir():
        if not (Path(name) / "config.json").is_file():
            raise ModelError(f"{name} has no config.json; expected a model directory written by save_pretrained")
    else:
        why = hub_unreachable()
        if why:
            raise ModelError(
                f"model {name!r} is not a local directory and could not be loaded from the hub ({why}); "
                "give a save_pretrained directory, or leave --model out for the built-in small ViT"
            )
    try:
        config = AutoConfig.from_pretrained(name)
    except Exception as e:
        offline = hub_offline() and not Path(name).is_dir()
        why = "HF_HUB_OFFLINE is set and it is not in the local cache" if offline else first_line(e)
        raise ModelError(
            f"could not load model {name!r} ({why}); give a hub id or a save_pretrained directory, "
            "or leave --model out for the built-in small ViT"
        ) from e
    cls = image_model_class(config, name, classifier=True)
    try:
        model = cls.from_pretrained(
            name,
            num_labels=len(class_names),
            id2label=dict(enumerate(class_names)),
            label2id={c: k for k, c in enumerate(class_names)},
            ignore_mismatched_sizes=True,  # a new head for our classes
        )
    except Exception as e:
        raise ModelError(f"could not load the weights of {name!r} ({first_line(e)})") from e
    try:
        processor = AutoImageProcessor.from_pretrained(name)
    except Exception as e:
        raise ModelError(
            f"{name!r} has no image processor ({first_line(e)}); save one beside the model with "
            "processor.save_pretrained(...)"
        ) from e
    return model, processor
