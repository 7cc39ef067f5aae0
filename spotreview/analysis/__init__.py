"""Stage 3, analysis: ``analyze`` (:mod:`.analyze`), outlier scores from exact neighbours
(:mod:`.outliers`), the 2-D projection and its alignment (:mod:`.projection`), and the stored
result, the one module that writes and reads ``RUN/analysis/`` (:mod:`.store`)."""
