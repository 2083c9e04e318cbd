"""The miniature data root of the protocol tests (:mod:`fr.data.miniature`), under the name the tests import."""
from fr.data.miniature import CFP_FRONTAL, CFP_IDS, CFP_PROFILE, LFW_SIZES, SIZE, build  # noqa: F401
