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
# torch.compile of the snapshot models (post-hoc embed): "auto" compiles nowhere it was measured
# to pay. ViT-base bf16 on a 2-core AVX512-BF16 CPU, eager with oneDNN linears (packed weights)
# and matmul attention: 23.6 img/s, compiled 22.5. On an H100 compiled is ~7 % faster, which a
# 10-18 s compile repays only past ~1.4-2.6 M image-forwards. "on" compiles anyway.
COMPILE_MODES = ("auto", "on", "off")

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")
ALIGN_MODES = ("last", "previous", "none")
ALIGN = "last"  # rotate/reflect every snapshot onto the final one
TOP_K = 8  # outliers listed per snapshot (analysis summary, export leaderboard)

HOST = "127.0.0.1"  # Spotlight binds localhost unless told otherwise
