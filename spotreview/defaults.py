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
# ViT-base bf16 on a 2-core AVX512-BF16 CPU, the CLI's process (freed memory kept): 23.4 / 24.0
# / 23.7 img/s at batch 8 / 16 / 32, a whole `embed` 25.0-25.3 s at 16 vs 25.3-26.0 s at 32
# (benchmarks/RESULTS.md, sixth session): no better, so 32 stays (16 was not measured on a GPU).
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
