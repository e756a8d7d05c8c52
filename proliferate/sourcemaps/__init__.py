"""Source maps: decoding, resolving frames, releases and uploads."""
