"""The model side of the lab: the zoo, canonical sites, the hook engine, generation, scoring and activations."""
