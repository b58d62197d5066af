"""Generative (VAE, GAN) and autoregressive (PixelCNN, WaveNet, GPT) models."""
