"""Data: Kaldi-style data directories, audio datasets."""
