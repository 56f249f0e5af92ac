"""`MLUseCase`: a use case declared in a `defs.yaml`, built by the same `build_use_case` as the module path.

    type: orchestration.components.MLUseCase
    attributes:
      spec: ml.usecases.bike_rentals:SPEC   # a UseCaseSpec, as module:attribute
      retrain_policy:                       # optional: fields of ml.retrain_policy.RetrainPolicy
        drift_persistence: 5

`dg scaffold defs orchestration.components.MLUseCase <name>` writes one whose spec is
`ml.usecases.<name>:SPEC`.
"""

from dataclasses import fields, replace
from importlib import import_module

import dagster as dg
import pydantic

from ml.retrain_policy import RetrainPolicy
from ml.spec import UseCaseSpec
from orchestration.definitions import build_use_case


def load_spec(reference: str) -> UseCaseSpec:
    """`package.module:ATTRIBUTE` -> the UseCaseSpec it names."""
    module, _, attribute = reference.partition(":")
    spec = getattr(import_module(module), attribute or "SPEC")
    if not isinstance(spec, UseCaseSpec):
        raise TypeError(f"{reference} is a {type(spec).__name__}, not a UseCaseSpec")
    return spec


class MLUseCaseScaffolder(dg.Scaffolder):
    def scaffold(self, request: dg.ScaffoldRequest) -> None:
        dg.scaffold_component(request, {"spec": f"ml.usecases.{request.target_path.name}:SPEC"})


@dg.scaffold_with(MLUseCaseScaffolder)
class MLUseCase(dg.Component, dg.Model, dg.Resolvable):
    """The whole lifecycle graph (ingest, contracts, features, training, gate, serving, monitoring,
    jobs, schedules, sensors) of one use-case spec."""

    spec: str = pydantic.Field(description="The use case's UseCaseSpec as `module:ATTRIBUTE`, e.g. ml.usecases.bike_rentals:SPEC.")
    retrain_policy: dict[str, float | int | bool] = pydantic.Field(
        default_factory=dict, description="Overrides of ml.retrain_policy.RetrainPolicy fields, e.g. drift_persistence: 5.")

    @pydantic.field_validator("retrain_policy")
    @classmethod
    def _known_fields(cls, overrides: dict) -> dict:
        unknown = set(overrides) - {f.name for f in fields(RetrainPolicy)}
        if unknown:
            raise ValueError(f"unknown RetrainPolicy field(s) {sorted(unknown)}; known: {[f.name for f in fields(RetrainPolicy)]}")
        return overrides

    def use_case_spec(self) -> UseCaseSpec:
        return load_spec(self.spec)

    def policy(self) -> RetrainPolicy:
        return replace(RetrainPolicy(), **self.retrain_policy)

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        return build_use_case(self.use_case_spec(), self.policy())
