"""Defaults a user can change, defined once: the library's signatures and the CLI both read them.

Plain constants and the ``Literal`` types of the modes, so ``spotreview --help`` stays instant.
Each mode's tuple of choices is read off its ``Literal``, so the two cannot drift apart.
"""

from typing import Literal, get_args

# The built-in demo (digits, small ViT): 1438 training images / 32 per batch = 45 steps
# per epoch, 20 epochs = 900 steps, a save every 50 steps = 18 saves + step 0.
RUN_DIR = "runs/demo"
DATASET = "digits"
SAVE_STEPS = 50
EPOCHS = 20.0
TRAIN_BATCH_SIZE = 32
SEED = 0
# Images per forward batch when embedding; larger batches do not pay (benchmarks/RESULTS.md).
EMBED_BATCH_SIZE = 32

Device = Literal["auto", "cpu", "cuda"]  # auto: CUDA when available, else the CPU
DEVICES: tuple[str, ...] = get_args(Device)
DEVICE: Device = "auto"

# auto: bf16 where the hardware runs it natively, else int8 (embed only) where VNNI makes it faster, else fp32
Precision = Literal["auto", "fp32", "bf16", "int8"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
PRECISION: Precision = "auto"

AlignMode = Literal["last", "previous", "none"]
ALIGN_MODES: tuple[str, ...] = get_args(AlignMode)
ALIGN: AlignMode = "last"  # rotate/reflect every snapshot onto the final one

ImageSet = Literal["eval", "train"]  # a run's evaluation images, and its recorded training images
IMAGE_SETS: tuple[str, ...] = get_args(ImageSet)
IMAGE_SET: ImageSet = "eval"  # the default everywhere

HtmlPlayer = Literal["interactive", "frames"]  # .html: our interactive player, or matplotlib's over frames
HTML_PLAYERS: tuple[str, ...] = get_args(HtmlPlayer)
HTML_PLAYER: HtmlPlayer = "interactive"
TWEEN = 0  # interpolated frames between consecutive snapshots

# `compare`: what lines the two runs' frames up; progress is a step as a share of its run's last snapshot step
SyncMode = Literal["progress", "step", "epoch"]
SYNC_MODES: tuple[str, ...] = get_args(SyncMode)
SYNC: SyncMode = "progress"

TOP_K = 8  # outliers listed per snapshot (analysis summary, export leaderboard)
OOD_K = 10  # neighbours of cleanlab's outlier score (OutOfDistribution's default k)
TRUST_K = 10  # neighbours whose ranks the 2-D picture's trustworthiness compares (analysis/trust.py)
# A snapshot whose 2-D picture scores below this is flagged (status, player, frames): its 2-D
# neighbours lie, on average, a fifth of the set away in the embedding; a random picture scores ~0.5.
TRUST_LOW = 0.8
# Data map (Swayamdipta et al. 2020) regions of analyze: "ambiguous" from this std of p(label)
# over the snapshots; else "easy" from this mean of it, "hard" below. Snapshots start at the
# untrained model, so an image learned within the first fifth of training still has a std of
# ~0.25-0.3: the variability threshold sits above that.
CONFIDENCE_THRESHOLD = 0.5
VARIABILITY_THRESHOLD = 0.3

HOST = "127.0.0.1"  # Spotlight binds localhost unless told otherwise
REVIEW_POLL = 1.0  # seconds between checks for changed exclusions or analysis during a review
