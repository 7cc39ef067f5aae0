"""Defaults a user can change, defined once: the library's signatures and the CLI both read them.

Plain constants, no imports, so ``spotreview --help`` stays instant.
"""

# The built-in demo (digits, small ViT): 1438 training images / 32 per batch = 45 steps
# per epoch, 20 epochs = 900 steps, a save every 50 steps = 18 saves + step 0.
RUN_DIR = "runs/demo"
DATASET = "digits"
SAVE_STEPS = 50
EPOCHS = 20.0
TRAIN_BATCH_SIZE = 32
SEED = 0
# Images per forward batch when embedding (benchmarks/RESULTS.md: larger batches were not faster).
EMBED_BATCH_SIZE = 32

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")
ALIGN_MODES = ("last", "previous", "none")
ALIGN = "last"  # rotate/reflect every snapshot onto the final one
TOP_K = 8  # outliers listed per snapshot (analysis summary, export leaderboard)
OOD_K = 10  # neighbours of cleanlab's outlier score (OutOfDistribution's default k)

HOST = "127.0.0.1"  # Spotlight binds localhost unless told otherwise
