"""Images: fit, render, evaluate and compress images from 64² to gigapixel with a hash grid + MLP."""
