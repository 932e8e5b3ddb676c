"""The run's configuration, in modules whose imports run one way: schema <- limits, schema <- suggestions, and
validation on top of all three.

* schema.py: the typed dataclasses of every config group (registered with Hydra when imported), the Choice enums
  of the closed keys, `get_key`;
* limits.py: the valid range of every numeric key and what each directory key must be, and their checks;
* suggestions.py: "did you mean": the nearest valid key or group option for a mistyped one;
* validation.py: `validate`, every check of a composed config, run before TensorFlow loads.

Importing the package registers the schema (conf/config.yaml starts from `qaexp_schema`).
"""
from qaexp.config import schema  # noqa: F401  (registers the schema in Hydra's ConfigStore)
