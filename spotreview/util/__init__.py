"""Helpers every stage may use: text for people (numbers, plurals) and this process (children,
signals, memory, BLAS threads)."""
