"""The ML lifecycle as software-defined assets, one module per stage, built from a use-case spec."""
