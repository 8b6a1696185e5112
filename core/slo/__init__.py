"""SLOs: Sloth `prometheus/v1` specs read unchanged and turned into the rules Sloth would generate."""

from watchkeeper.core.slo.rules import SLO, GeneratorInfo, generate_rule_groups, rules_yaml, slos_of
from watchkeeper.core.slo.spec import SlothSpec, load_slo_spec, load_slo_spec_file

__all__ = [
    "SLO",
    "GeneratorInfo",
    "SlothSpec",
    "generate_rule_groups",
    "load_slo_spec",
    "load_slo_spec_file",
    "rules_yaml",
    "slos_of",
]
