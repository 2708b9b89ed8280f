"""The ``.bs`` container: fixed header, blobs, index. Pure byte <-> value conversions."""
