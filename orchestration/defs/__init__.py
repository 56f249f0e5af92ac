"""The use cases of this code location, one `defs.yaml` (an `MLUseCase` component) per folder."""
