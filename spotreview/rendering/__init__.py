"""Stage 5, rendering: ``export`` (:mod:`.export`) draws the approved story.

What a frame shows (:mod:`.scene`), how it is drawn (:mod:`.figure`, :mod:`.style`), the
encoders (:mod:`.writers`) and the HTML player (:mod:`.player`).
"""
