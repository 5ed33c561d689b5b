"""Audio front-end: mel filterbanks and features (torch.stft + librosa filters)."""
