"""``fishpredict soak``: a bounded run of good and hostile requests, proof that nothing is lost."""
