"""Stage: watermarks -- a data owner's secret trigger -> response pairs, planted and tested for.

``key`` draws the secret (and matched controls), ``embed`` plants it into preference data,
``verify`` tests a suspect model with an exact rank test (``ranktest``). arXiv 2502.14182 Sec. 4-5;
Double-I watermark (arXiv 2402.14883); instructional fingerprinting (arXiv 2401.12255).
"""

from poisonlab.watermarks.embed import EmbedResult, embed_watermark, write_watermarked
from poisonlab.watermarks.key import KeyShape, WatermarkKey, control_triggers, generate_key, read_key, write_key
from poisonlab.watermarks.verify import WatermarkVerifyConfig, verify_model, verify_watermark

__all__ = [
    "EmbedResult",
    "KeyShape",
    "WatermarkKey",
    "WatermarkVerifyConfig",
    "control_triggers",
    "embed_watermark",
    "generate_key",
    "read_key",
    "verify_model",
    "verify_watermark",
    "write_key",
    "write_watermarked",
]
