"""The pure core: types, dtype bit layouts, safetensors header parsing, layer detection, planning.

Nothing in this package opens files, reads clocks, spawns threads or touches globals.
"""
