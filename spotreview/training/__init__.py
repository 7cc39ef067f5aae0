"""Stage 2, fine-tuning: ``finetune`` with the Hugging Face Trainer (:mod:`.finetune`) and the
Trainer callback that records embeddings at every save (:mod:`.recorder`)."""
