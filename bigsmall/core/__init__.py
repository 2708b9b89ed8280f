"""The pure core, the bottom layer: value types, dtype bit layouts, safetensors header parsing,
layer detection, the entropy floor. It imports nothing of bigsmall but ``errors``; the codecs,
the container format and the planner (``bigsmall.plan``) build on it.

Nothing in this package opens files, reads clocks, spawns threads or touches globals.
"""
