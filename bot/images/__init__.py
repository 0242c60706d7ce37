"""Input images: what a model accepts (`limits`) and turning user photos into that (`normalize`)."""
