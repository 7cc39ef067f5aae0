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
# ViT-base, 2-core AMX CPU, bf16 autocast: 20.7 img/s at batch 32 vs 13.1 at 64 and 17.1 at
# 16 in a forward-only run (end to end 14.4 vs 13.2 at 64): 64 x 197 tokens fall out of cache.
EMBED_BATCH_SIZE = 32
# torch.compile of the snapshot models (post-hoc embed): "auto" compiles on a CPU once there
# are COMPILE_MIN_FORWARDS image-forwards (images x snapshots) to run, e.g. 10k images x 5
# snapshots. ViT-base bf16 on 2 cores, matmul attention, freed memory kept: the compiled
# forward is only ~2 % faster (21.9 vs 21.5 img/s; 16 % before those two changes), so a cold
# compile (~20 s) pays for itself from ~25k image-forwards.
COMPILE_MODES = ("auto", "on", "off")
COMPILE_MIN_FORWARDS = 50_000

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")
ALIGN_MODES = ("last", "previous", "none")
ALIGN = "last"  # rotate/reflect every snapshot onto the final one
TOP_K = 8  # outliers listed per snapshot (analysis summary, export leaderboard)

HOST = "127.0.0.1"  # Spotlight binds localhost unless told otherwise
