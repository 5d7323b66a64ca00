"""The identity oracle of the search tests under its old names; it lives in ``haq.testing``,
where the benchmarks find it too."""

from haq.testing import IdentityOracle as Synthetic
from haq.testing import identity_oracle as build

__all__ = ["Synthetic", "build"]
