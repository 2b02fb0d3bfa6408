"""SynthMotion, the official datasets and their layout, and clips for training."""
