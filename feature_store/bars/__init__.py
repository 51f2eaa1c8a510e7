"""Bar features (feature set ``bar_v1``): declarations in ``definitions``, batch compute in ``compute``."""
