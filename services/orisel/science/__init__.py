"""Pure analysis: stimuli, unit responses, selectivity indices, ablation, shift-invariance."""
