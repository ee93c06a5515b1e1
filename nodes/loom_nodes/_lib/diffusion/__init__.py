"""Pure helpers of the diffusion nodes: prompts, schedulers, the sampling loop, previews, loading."""
