"""Helpers for tests and benchmarks; not part of the codec's public API.

They exist so that every test and every number we publish is measured on real trained weights
(see ``bigsmall.testing.corpus``) rather than on random tensors, whose bit statistics are nothing
like those of a trained checkpoint.
"""
