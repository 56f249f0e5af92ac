"""Component types this project provides to `dg` (registered in pyproject.toml `[tool.dg.project]`)."""

from orchestration.components.use_case import MLUseCase

__all__ = ["MLUseCase"]
