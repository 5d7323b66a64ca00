"""Policy: layer name -> (w_bits, a_bits). What every strategy proposes and every stage consumes."""

from haq.policy._policy import FORMAT_VERSION, MAX_BITS, MIN_BITS, LayerBits, Policy
from haq.policy._project import RULES as PROJECTION_RULES
from haq.policy._project import Projector, project
from haq.policy._space import FLOAT_INDEX, BitSpace, bits_index

__all__ = [
    "FLOAT_INDEX", "FORMAT_VERSION", "MAX_BITS", "MIN_BITS", "PROJECTION_RULES",
    "BitSpace", "LayerBits", "Policy", "Projector", "bits_index", "project",
]
