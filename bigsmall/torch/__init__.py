"""torch integration (optional dependency): load decoded tensors straight into torch storage."""
