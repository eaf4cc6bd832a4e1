"""Training (optional extra ``train``): dataset building with augmentation, training, export to a model file."""
