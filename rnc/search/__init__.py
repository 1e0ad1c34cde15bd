"""Search spaces, supernets, datasets and searchers. Knows nothing of Ray or MLflow."""
