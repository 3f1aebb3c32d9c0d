"""Evaluation of trained models: the validation and test numbers (metrics: ELBO,
importance-weighted log p(x), bits/dim), FID (fid), the exact likelihood of 2-D latents by
quadrature (posterior), out-of-distribution likelihoods (ood), runs side by side (compare),
the latent explorer's codes and projections (explore) and the browser decoder's export
(mlp_export)."""
