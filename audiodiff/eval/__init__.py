"""Evaluation: Frechet distance, FAD-inf and KAD over embeddings; embedders; audio metrics."""
