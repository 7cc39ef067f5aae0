"""Stage 1 of the pipeline, the forward pass: image sources (:mod:`.sources`), models
(:mod:`.models`), preprocessing (:mod:`.pixels`), the embeddings and probabilities of one model
(:mod:`.forward`), and ``embed`` over a run's checkpoints (:mod:`.embed`).

Training records with this forward pass, so this package sits below :mod:`spotreview.training`.
"""
